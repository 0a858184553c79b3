"""Async Mailchimp Marketing API client: auth, data center, 10-connection cap, retries.

Mailchimp allows 10 simultaneous connections per API key (429 past that), so every
request of every client in the process that uses the same key takes a slot of one
process-wide `ConnectionSlots`, keyed by a hash of the key (never the key itself).
A slot is held for one attempt only, never during a backoff sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

from connectors.errors import ESPError, TransportFailure
from connectors.http import RetryPolicy, send
from connectors.mailchimp.errors import classify_403, parse_problem
from connectors.mailchimp.settings import MailchimpSettings

USER_AGENT = "espbridge-mailchimp/0.1"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # Building a TLS context loads the CA bundle (~50 ms); one per process is enough.
    return ssl.create_default_context()


class UncertainDelivery(ESPError):
    """A non-idempotent request was written but its answer was lost.

    Not retried blindly: the caller reads back (member events) before sending again.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.uncertain = True


class ConnectionSlots:
    """A counting semaphore shared by every event loop and thread of the process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._in_use = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._granted: set[asyncio.Future[None]] = set()

    @property
    def in_use(self) -> int:
        """Slots currently taken."""
        return self._in_use

    async def acquire(self) -> None:
        """Wait for a free slot (first come, first served) and take it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_use < self.limit and not self._waiters:
                self._in_use += 1
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                handed = future in self._granted
                self._granted.discard(future)
                if not handed:
                    self._waiters = deque(w for w in self._waiters if w[1] is not future)
            if handed:
                self.release()
            raise
        with self._lock:
            self._granted.discard(future)

    def release(self) -> None:
        """Give a slot back, handing it straight to the oldest live waiter."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if future.done():
                    continue
                try:
                    loop.call_soon_threadsafe(_wake, future)
                except RuntimeError:  # the waiter's event loop is closed: it is gone
                    continue
                self._granted.add(future)
                return
            self._in_use -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_SLOTS: dict[str, ConnectionSlots] = {}
_SLOTS_LOCK = threading.Lock()


def shared_slots(account: str, limit: int = 10) -> ConnectionSlots:
    """The process-wide connection slots of one account (a hash of its credential)."""
    with _SLOTS_LOCK:
        slots = _SLOTS.get(account)
        if slots is None:
            slots = _SLOTS[account] = ConnectionSlots(limit)
        return slots


def account_id(settings: MailchimpSettings) -> str:
    """A non-secret identity of the credential: a truncated SHA-256."""
    secret = settings.api_key or settings.oauth_token
    raw = secret.get_secret_value() if secret is not None else ""
    return "mc:" + hashlib.sha256(raw.encode()).hexdigest()[:16]


class InFlightMeter:
    """Time-weighted count of in-flight requests, for connection utilisation."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self._area = 0.0
        self._last = time.perf_counter()
        self._started = self._last

    def _tick(self) -> None:
        now = time.perf_counter()
        self._area += self.in_flight * (now - self._last)
        self._last = now

    def enter(self) -> None:
        """A request started."""
        self._tick()
        self.in_flight += 1
        self.requests += 1

    def leave(self) -> None:
        """A request finished."""
        self._tick()
        self.in_flight -= 1

    def reset(self) -> None:
        """Start a new measurement window."""
        self._area = 0.0
        self.requests = 0
        self._last = self._started = time.perf_counter()

    def mean_in_flight(self) -> float:
        """Mean in-flight requests since the last reset."""
        self._tick()
        elapsed = self._last - self._started
        return self._area / elapsed if elapsed > 0 else 0.0


class MailchimpClient:
    """One audience account's API, over an injectable transport.

    Args:
        settings: The destination's settings (credential, data center, base_url, retry).
        transport: An httpx transport (MockTransport in tests); default: real network.
    """

    def __init__(
        self, settings: MailchimpSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.root = settings.api_root
        self.policy = RetryPolicy(
            max_attempts=settings.retry.max_attempts,
            initial=settings.retry.initial_seconds,
            max_delay=settings.retry.max_delay_seconds,
        )
        self.slots = shared_slots(account_id(settings), settings.max_connections)
        self.meter = InFlightMeter()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if settings.api_key is not None:
            auth = httpx.BasicAuth("espbridge", settings.api_key.get_secret_value())
        elif settings.oauth_token is not None:
            headers["Authorization"] = f"Bearer {settings.oauth_token.get_secret_value()}"
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        self._http = httpx.AsyncClient(
            auth=auth,
            headers=headers,
            timeout=settings.timeout_seconds,
            transport=transport,
            limits=limits,
            verify=_tls(),
        )
        self._transport = transport
        self._plain: httpx.AsyncClient | None = None

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as `/lists/abc/members`."""
        return f"{self.root}{path}"

    async def _attempt(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        idempotent: bool,
    ) -> httpx.Response:
        await self.slots.acquire()
        self.meter.enter()
        try:
            response = await self._http.request(method, self.url(path), json=json, params=params)
        except httpx.TransportError as exc:
            failure_uncertain = not isinstance(
                exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
            )
            if failure_uncertain and not idempotent:
                raise UncertainDelivery(f"{method} {path}: {type(exc).__name__}") from exc
            raise TransportFailure(
                f"{type(exc).__name__}: {exc}", uncertain=failure_uncertain
            ) from exc
        finally:
            self.meter.leave()
            self.slots.release()
        if response.status_code == 403:
            classify_403(response)
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one API call with retries (429, throttling 403, 5xx, network errors).

        Args:
            method: HTTP method.
            path: API path below the root, e.g. `/lists/abc/members/<hash>`.
            json: JSON body.
            params: Query parameters.
            idempotent: False for calls that must not be repeated blindly (member
                events, journey triggers): a lost answer raises `UncertainDelivery`.

        Raises:
            RejectedPayload: Mailchimp refused the call (4xx) and said why.
            AuthFailed: The credential was refused.
            UncertainDelivery: See `idempotent`.
            RetryableESPError: Retries were exhausted.
        """
        return await send(
            lambda: self._attempt(method, path, json, params, idempotent),
            parse_problem,
            self.policy,
        )

    async def download(self, url: str) -> bytes:
        """Fetch a batch results archive (a pre-signed URL: no API credential sent)."""

        async def attempt() -> httpx.Response:
            if self._plain is None:
                # A pre-signed storage URL may redirect (another region); it is a plain
                # GET without credentials, so following it is safe.
                self._plain = httpx.AsyncClient(
                    timeout=self.settings.timeout_seconds,
                    transport=self._transport,
                    verify=_tls(),
                    follow_redirects=True,
                )
            try:
                return await self._plain.get(url)
            except httpx.TransportError as exc:
                raise TransportFailure(f"{type(exc).__name__}: {exc}", uncertain=False) from exc

        response = await send(attempt, parse_problem, self.policy)
        return response.content

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._http.aclose()
        if self._plain is not None:
            await self._plain.aclose()
