"""A client of Segment's Profiles API (`/v1/spaces/<space>/collections/users/profiles/…`).

Auth is HTTP Basic with the access token as user and an empty password; identifiers
are `type:value` with a lower-case type and `+` sent as `%2B`; pages are `limit` plus
the `next` cursor from the previous response; the API allows 100 requests/s per space
and answers 429 beyond (retried, honouring Retry-After). A missing profile is a 404
with code `not_found`: the client returns None for it.
(esp-api-contracts.md §3.5.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from connectors.errors import RejectedPayload
from connectors.http import RetryPolicy, SlidingWindowLimiter, send
from mapping.identity import ProfilesApiSettings


@dataclass(frozen=True, slots=True)
class ExternalId:
    """One identifier of a Segment profile (`user_id`, `email`, `anonymous_id`, …)."""

    type: str
    id: str
    created_at: str | None = None


def _parse_error(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return response.text[:300], None
    return f"{error.get('code')}: {error.get('message')}", None


def profile_path(space_id: str, kind: str, value: str) -> str:
    """The profile's path for an identifier (`email:ann@x.com`, `phone:%2B1415…`)."""
    identifier = f"{kind.lower()}:{quote(value, safe='@.-_~')}"
    return f"/v1/spaces/{quote(space_id, safe='')}/collections/users/profiles/{identifier}"


class ProfilesClient:
    """Reads profiles of one Unify space."""

    def __init__(
        self,
        settings: ProfilesApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        time_scale: float = 1.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = SlidingWindowLimiter(settings.requests_per_second, 1.0 / time_scale)
        self.policy = policy or RetryPolicy()
        self.requests = 0
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            auth=(settings.access_token.get_secret_value(), ""),
            transport=transport,
            timeout=settings.timeout_seconds,
        )

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()

    async def __aenter__(self) -> ProfilesClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
        async def attempt() -> httpx.Response:
            await self.limiter.acquire()
            self.requests += 1
            return await self._client.get(path, params=params)

        try:
            response = await send(attempt, _parse_error, self.policy)
        except RejectedPayload as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = response.json()
        return body

    async def _pages(
        self, path: str, params: dict[str, Any], key: str
    ) -> list[Any] | dict[str, Any] | None:
        params = {**params, "limit": self.settings.page_limit}
        items: list[Any] = []
        traits: dict[str, Any] = {}
        while True:
            body = await self._get(path, params)
            if body is None:
                return None
            page = body.get(key)
            if isinstance(page, dict):
                traits.update(page)
            elif isinstance(page, list):
                items += page
            cursor = body.get("cursor") or {}
            if not cursor.get("has_more") or not cursor.get("next"):
                return traits if key == "traits" else items
            params = {**params, "next": cursor["next"]}

    async def external_ids(
        self, kind: str, value: str, include: Sequence[str] = ()
    ) -> list[ExternalId] | None:
        """Every external id of the profile holding (kind, value); None if no profile."""
        params: dict[str, Any] = {"include": ",".join(include)} if include else {}
        path = profile_path(self.settings.space_id, kind, value) + "/external_ids"
        found = await self._pages(path, params, "data")
        if found is None:
            return None
        assert isinstance(found, list)
        return [
            ExternalId(str(item["type"]), str(item["id"]), item.get("created_at"))
            for item in found
            if isinstance(item, dict) and item.get("type") and item.get("id")
        ]

    async def traits(
        self, kind: str, value: str, include: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        """The profile's traits (all pages, or only `include`); None if no profile."""
        params: dict[str, Any] = {"include": ",".join(include)} if include else {}
        path = profile_path(self.settings.space_id, kind, value) + "/traits"
        found = await self._pages(path, params, "traits")
        if found is None:
            return None
        assert isinstance(found, dict)
        return found
