"""Checks every Klaviyo request passes before a route sees it.

Order: route known (404/405), `Authorization` (401), `revision` (400),
rate limit (429), `Content-Type` on bodies (415). Successful and non-429
responses get `RateLimit-Limit/Remaining/Reset`; 429s get `Retry-After`
instead (and `Retry-After-Ms` when time_scale > 1, see the README's sandbox section).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date

from esp_sandbox.context import SandboxContext
from esp_sandbox.klaviyo.errors import error_object, error_response
from esp_sandbox.klaviyo.spec import KlaviyoSpec
from esp_sandbox.middleware import ASGIApp, Message, Receive, Scope, Send
from esp_sandbox.ratelimit import FixedWindowLimiter, Verdict

OLDEST_REVISION = date(2024, 10, 15)
_REVISION = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(\.[a-z][a-z0-9]*)?$")
_BODY_TYPES = ("application/json", "application/vnd.api+json")


@dataclass(frozen=True)
class Operation:
    """One Klaviyo operation the sandbox serves."""

    method: str
    template: str
    tier: str
    pattern: re.Pattern[str]


def _op(method: str, template: str, tier: str) -> Operation:
    regex = re.sub(r"\{[^}]+\}", "[^/]+", template)
    return Operation(method, template, tier, re.compile(f"^{regex}$"))


OPERATIONS: tuple[Operation, ...] = (
    _op("POST", "/api/events", "XL"),
    _op("POST", "/api/event-bulk-create-jobs", "M"),
    _op("POST", "/api/profile-import", "L"),
    _op("POST", "/api/profiles", "L"),
    _op("GET", "/api/profiles", "L"),
    _op("GET", "/api/profiles/{id}", "L"),
    _op("PATCH", "/api/profiles/{id}", "L"),
    _op("POST", "/api/profile-bulk-import-jobs", "M"),
    _op("GET", "/api/profile-bulk-import-jobs/{job_id}", "M"),
    _op("GET", "/api/profile-bulk-import-jobs/{id}/import-errors", "M"),
    _op("POST", "/api/profile-subscription-bulk-create-jobs", "L"),
    _op("POST", "/api/profile-subscription-bulk-delete-jobs", "L"),
    _op("POST", "/api/lists/{id}/relationships/profiles", "M"),
    _op("DELETE", "/api/lists/{id}/relationships/profiles", "M"),
    _op("GET", "/api/lists", "L"),
    _op("POST", "/api/lists", "M"),
    _op("GET", "/api/lists/{id}", "L"),
    _op("GET", "/api/accounts", "XS"),
    _op("GET", "/api/templates", "L"),
)


def match_operation(method: str, path: str) -> tuple[Operation | None, bool]:
    """(operation, path_known): the operation for method+path, and whether any method fits."""
    known = False
    for op in OPERATIONS:
        if op.pattern.match(path):
            known = True
            if op.method == method:
                return op, True
    return None, known


def check_revision(value: str | None) -> str | None:
    """An error detail for a bad `revision` header, or None when acceptable."""
    if not value:
        return "Missing required header: revision. Use a revision in YYYY-MM-DD format."
    match = _REVISION.match(value)
    try:
        day = date(int(match[1]), int(match[2]), int(match[3])) if match else None
    except ValueError:
        day = None
    if day is None:
        return f"Invalid revision '{value}'. The revision must be in YYYY-MM-DD[.suffix] format."
    if day < OLDEST_REVISION:
        return (
            f"Revision '{value}' is no longer supported by this sandbox; "
            f"use {OLDEST_REVISION.isoformat()} or later."
        )
    return None


class KlaviyoGate:
    """Pure ASGI middleware guarding `/api/*`."""

    def __init__(
        self, app: ASGIApp, ctx: SandboxContext, spec: KlaviyoSpec, limiter: FixedWindowLimiter
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.spec = spec
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
            scope["path"] = path
            scope["raw_path"] = path.encode()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = str(scope["method"])
        op, known = match_operation(method, path)
        if op is None:
            status, code = (405, "method_not_allowed") if known else (404, "not_found")
            detail = f"{method} {path} is not served by the Klaviyo sandbox."
            await _send_error(send, status, code, detail, None)
            return
        key = self._authenticate(headers.get("authorization"))
        if key is None:
            detail = "Authentication credentials were not provided or are invalid."
            await _send_error(send, 401, "not_authenticated", detail, None)
            return
        problem = check_revision(headers.get("revision"))
        if problem is not None:
            await _send_error(send, 400, "invalid_revision", problem, None, parameter="revision")
            return
        burst, steady = self.spec.rate_limit(op.template, op.method, op.tier)
        verdict = self.limiter.admit(key, f"{op.method} {op.template}", burst, steady)
        if not verdict.allowed:
            await self._throttle(send, verdict)
            return
        limit_headers = _limit_headers(verdict)
        if method in ("POST", "PATCH", "PUT", "DELETE") and not _body_type_ok(headers):
            detail = f"Unsupported media type '{headers.get('content-type', '')}'."
            await _send_error(send, 415, "unsupported_media_type", detail, limit_headers)
            return
        scope.setdefault("state", {})["klaviyo_operation"] = op

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    def _authenticate(self, header: str | None) -> str | None:
        """The API key or token the request is limited under, or None."""
        scheme, _, credential = (header or "").strip().partition(" ")
        credential = credential.strip()
        if scheme == "Klaviyo-API-Key":
            allowed = self.ctx.config.klaviyo_api_keys
            if allowed is None:
                ok = credential.startswith("pk_") and len(credential) >= 9
            else:
                ok = credential in allowed
            return f"key:{credential}" if ok else None
        if scheme == "Bearer":
            tokens = self.ctx.config.klaviyo_oauth_tokens
            return f"oauth:{credential}" if tokens and credential in tokens else None
        return None

    async def _throttle(self, send: Send, verdict: Verdict) -> None:
        headers = [(b"retry-after", verdict.retry_after_header.encode())]
        if self.ctx.clock.time_scale > 1:
            millis = max(1, math.ceil(verdict.retry_after_s * 1000))
            headers.append((b"retry-after-ms", str(millis).encode()))
        seconds = verdict.retry_after_header
        unit = "second" if seconds == "1" else "seconds"
        detail = f"Request was throttled. Expected available in {seconds} {unit}."
        obj = error_object(429, "throttled", detail)
        obj["links"] = {
            "type": "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling"
        }
        await _send(send, 429, [obj], headers)


def _body_type_ok(headers: dict[str, str]) -> bool:
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return True
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return media in _BODY_TYPES


def _limit_headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(verdict.limit).encode()),
        (b"ratelimit-remaining", str(verdict.remaining).encode()),
        (b"ratelimit-reset", verdict.reset_header.encode()),
    ]


async def _send_error(
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None,
    parameter: str | None = None,
) -> None:
    pointer = None if parameter else "/data"
    obj = error_object(status, code, detail, pointer=pointer, parameter=parameter)
    await _send(send, status, [obj], headers or [])


async def _send(
    send: Send, status: int, errors: list[dict[str, object]], headers: list[tuple[bytes, bytes]]
) -> None:
    response = error_response(status, errors)
    raw = [*response.raw_headers, *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": response.body})
