"""Helpers every Klaviyo route uses: read and validate a body, answer in JSON:API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from esp_sandbox.context import SandboxContext
from esp_sandbox.klaviyo.errors import JSONAPI, KlaviyoError
from esp_sandbox.klaviyo.spec import KlaviyoSpec
from esp_sandbox.klaviyo.store import KlaviyoStore
from esp_sandbox.klaviyo.validate import (
    MAX_STRING_BYTES,
    check_payload_size,
    long_strings,
    raise_issues,
)


@dataclass
class Deps:
    """What the Klaviyo routes share."""

    ctx: SandboxContext
    store: KlaviyoStore
    spec: KlaviyoSpec
    revision_deltas: bool = True


async def read_body(
    deps: Deps, request: Request, template: str, *, max_bytes: int = 5 * 1024 * 1024
) -> Any:
    """Parse and schema-validate a request body; raise a Klaviyo 400/413 when it is bad.

    Args:
        deps: Shared route dependencies.
        request: The incoming request.
        template: The operation's path template in the spec (e.g. `/api/events`).
        max_bytes: Payload limit of this operation.
    """
    raw = await request.body()
    check_payload_size(raw, max_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise KlaviyoError(400, "parse_error", f"Malformed JSON body: {exc}.") from exc
    revision = request.headers.get("revision", "")
    checked = older_revision_view(body, template, revision) if deps.revision_deltas else body
    issues = deps.spec.check_request(template, request.method, checked)
    raise_issues(issues[:20])
    if len(raw) > MAX_STRING_BYTES:  # a shorter body cannot hold a too-long string
        raise_issues(long_strings(body)[:20])
    return body


def older_revision_view(body: Any, template: str, revision: str) -> Any:
    """The body as the 2026-07-15 schema would see it, for a request pinned to an older revision.

    Known delta: before 2026-04-15, unsubscribe jobs listed profiles by email and
    phone only, without per-channel `subscriptions` (RudderStack's v2 vectors at
    revision 2024-10-15 do this; its v3 at 2026-04-15 adds them). We fill in the
    implied UNSUBSCRIBED consent so such bodies validate.
    """
    if template != "/api/profile-subscription-bulk-delete-jobs" or revision >= "2026-04-15":
        return body
    try:
        profiles = body["data"]["attributes"]["profiles"]["data"]
    except (KeyError, TypeError):
        return body
    for profile in profiles if isinstance(profiles, list) else []:
        attrs = profile.get("attributes") if isinstance(profile, dict) else None
        if isinstance(attrs, dict) and "subscriptions" not in attrs:
            attrs["subscriptions"] = implied_unsubscribe(attrs)
    return body


def implied_unsubscribe(attrs: dict[str, Any]) -> dict[str, Any]:
    """UNSUBSCRIBED consent for each channel a profile names (email, sms)."""
    subs: dict[str, Any] = {}
    if attrs.get("email"):
        subs["email"] = {"marketing": {"consent": "UNSUBSCRIBED"}}
    if attrs.get("phone_number"):
        subs["sms"] = {"marketing": {"consent": "UNSUBSCRIBED"}}
    return subs


def jsonapi(payload: Any, status: int = 200) -> Response:
    """A JSON:API response (`application/vnd.api+json`)."""
    return Response(orjson.dumps(payload), status_code=status, media_type=JSONAPI)


def accepted() -> Response:
    """202 with no body, as Klaviyo answers event and subscription jobs."""
    return Response(status_code=202)


def no_content() -> Response:
    """204 with no body."""
    return Response(status_code=204)


def base_url(request: Request) -> str:
    """Scheme and host the client used (for `links`)."""
    return str(request.base_url).rstrip("/")


def page_params(request: Request, default: int = 20, maximum: int = 100) -> tuple[int, int]:
    """(offset, size) from `page[cursor]` and `page[size]`; 400 when out of range."""
    raw_size = request.query_params.get("page[size]", str(default))
    raw_cursor = request.query_params.get("page[cursor]", "0")
    try:
        size, offset = int(raw_size), int(raw_cursor or "0")
    except ValueError as exc:
        raise KlaviyoError(
            400, "invalid", "page[size] and page[cursor] must be integers here.", pointer=None
        ) from exc
    if not 1 <= size <= maximum:
        raise KlaviyoError(
            400,
            "invalid",
            f"page[size] must be between 1 and {maximum}.",
            pointer=None,
            parameter="page[size]",
        )
    return max(0, offset), size


def collection_links(request: Request, offset: int, size: int, total: int) -> dict[str, Any]:
    """`self`, and `next`/`prev` cursors (the sandbox's cursor is an opaque offset)."""
    url = request.url.remove_query_params(["page[cursor]"])
    links: dict[str, Any] = {"self": str(request.url)}
    if offset + size < total:
        links["next"] = str(url.include_query_params(**{"page[cursor]": str(offset + size)}))
    if offset > 0:
        links["prev"] = str(
            url.include_query_params(**{"page[cursor]": str(max(0, offset - size))})
        )
    return links
