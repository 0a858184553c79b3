"""Async Klaviyo HTTP client: auth, revision, JSON:API headers, limits, retries.

The transport is injected, so the same client runs against `httpx.MockTransport`,
the sandbox or https://a.klaviyo.com.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from connectors.errors import AuthFailed, RateLimited, Redirected
from connectors.http import RateTier, RetryPolicy, TierLimiter, send, shared_limiter
from connectors.klaviyo.errors import parse_error
from connectors.klaviyo.limits import OPERATIONS, load_spec_tiers, tier_for
from connectors.klaviyo.settings import KlaviyoSettings

JSON_API = "application/vnd.api+json"


def account_of(settings: KlaviyoSettings) -> str:
    """A non-secret identity of the account (limiters are shared per account)."""
    if settings.api_key is not None:
        secret = settings.api_key.get_secret_value()
    elif settings.oauth is not None:
        secret = (
            "oauth:" + settings.oauth.client_id + settings.oauth.refresh_token.get_secret_value()
        )
    else:
        secret = "anonymous"
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def policy_of(settings: KlaviyoSettings) -> RetryPolicy:
    """The retry policy from `[destinations.<name>.retry]`."""
    retry = settings.retry
    return RetryPolicy(
        max_attempts=retry.max_attempts,
        initial=retry.initial_seconds,
        max_delay=retry.max_delay_seconds,
    )


class KlaviyoClient:
    """One account's connection to Klaviyo.

    Args:
        settings: The destination config.
        transport: Optional httpx transport (MockTransport, or None for the network).
    """

    def __init__(
        self, settings: KlaviyoSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if settings.api_key is None and settings.oauth is None:
            raise AuthFailed("Klaviyo: set api_key or [oauth] in the destination config")
        self.settings = settings
        self.policy = policy_of(settings)
        self._account = account_of(settings)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            transport=transport,
            timeout=settings.timeout_seconds,
            headers={"revision": settings.revision, "accept": JSON_API},
        )
        self._access_token = (
            settings.oauth.access_token.get_secret_value()
            if settings.oauth and settings.oauth.access_token
            else None
        )
        overrides = {k: RateTier(v.burst, v.steady) for k, v in settings.rate_limits.items()}
        spec = load_spec_tiers(settings.spec_path) if settings.spec_path else {}
        self._tiers = {op: tier_for(op, spec, overrides) for op in OPERATIONS}

    def limiter(self, operation_id: str) -> TierLimiter:
        """The process-wide limiter of one operation for this account."""
        return shared_limiter(
            self._account, operation_id, self._tiers[operation_id], self.settings.time_scale
        )

    def tier(self, operation_id: str) -> RateTier:
        """The rate tier in force for one operation."""
        return self._tiers[operation_id]

    def _auth_header(self) -> str:
        if self.settings.api_key is not None:
            return f"Klaviyo-API-Key {self.settings.api_key.get_secret_value()}"
        return f"Bearer {self._access_token or ''}"

    async def refresh_token(self) -> None:
        """Trade the OAuth refresh token for a new access token."""
        oauth = self.settings.oauth
        if oauth is None:
            raise AuthFailed("Klaviyo refused the private API key (401)")
        response = await self._http.post(
            oauth.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": oauth.refresh_token.get_secret_value(),
            },
            auth=(oauth.client_id, oauth.client_secret.get_secret_value()),
        )
        if response.status_code != 200:
            raise AuthFailed(f"Klaviyo OAuth refresh failed with {response.status_code}")
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthFailed("Klaviyo OAuth refresh answered 200 without an access_token")
        self._access_token = token

    async def call(
        self,
        operation_id: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        path: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one operation with limits, retries and (OAuth) one refresh on 401.

        Raises:
            RejectedPayload: a non-retryable 4xx, with Klaviyo's detail and pointer.
            AuthFailed: credentials refused.
            RetryableESPError: retries exhausted.
        """
        need_token = self.settings.api_key is None and self._access_token is None
        if need_token:
            await self.refresh_token()
        try:
            return await self._send(operation_id, body, params, path or {})
        except Redirected:
            raise  # a wrong base_url: a new token would be redirected all the same
        except AuthFailed:
            if self.settings.api_key is not None or need_token:
                raise
            await self.refresh_token()
            return await self._send(operation_id, body, params, path or {})

    async def _send(
        self,
        operation_id: str,
        body: Any,
        params: Mapping[str, str] | None,
        path_params: Mapping[str, str],
    ) -> httpx.Response:
        op = OPERATIONS[operation_id]
        url = op.path.format(**path_params)
        content = orjson.dumps(body) if body is not None else None
        limiter = self.limiter(operation_id)

        async def attempt() -> httpx.Response:
            await limiter.acquire()
            headers = {"authorization": self._auth_header()}
            if content is not None:
                headers["content-type"] = JSON_API
            response = await self._http.request(
                op.method, url, content=content, params=params, headers=headers
            )
            self._observe(limiter, response)
            return response

        async def on_retry(error: BaseException) -> None:
            if isinstance(error, RateLimited):
                wait = error.retry_after if error.retry_after is not None else 1.0
                limiter.pause(min(wait, self.policy.max_delay))

        return await send(attempt, parse_error, self.policy, on_retry=on_retry)

    @staticmethod
    def _observe(limiter: TierLimiter, response: httpx.Response) -> None:
        # RateLimit-Remaining: 0 means the steady window is spent: wait for its reset
        # rather than collect a 429.
        # Our own sliding window already stops us at the limit, so only pause when
        # someone else (another process on the same account) spent the budget.
        remaining = response.headers.get("RateLimit-Remaining", "").strip()
        reset = response.headers.get("RateLimit-Reset", "").strip()
        if remaining != "0" or not reset.isdigit():
            return
        if limiter.steady.used() < limiter.steady.limit:
            limiter.pause(min(float(reset), limiter.steady.window))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
