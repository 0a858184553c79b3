"""Mailchimp problem documents (`application/problem+json`) → (detail, field).

Mailchimp answers errors with `type`, `title`, `status`, `detail`, `instance` and,
for validation failures, `errors[{field, message}]`. Some 403s are throttling, not
refused credentials; `classify_403` tells them apart so they are retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.errors import AuthFailed, RateLimited
from connectors.http import retry_after_seconds, text_reason

# Member-level refusals: the person cannot be (re)subscribed; never retried.
MEMBER_REFUSALS = frozenset(
    {"Member In Compliance State", "Forgotten Email Not Subscribed", "Member Exists"}
)
_THROTTLE_WORDS = ("too many", "throttl", "rate limit", "simultaneous connections", "slow down")


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem_title(response: httpx.Response) -> str:
    """The problem document's `title`, or "" when there is none."""
    return str(_body(response).get("title") or "")


def parse_problem(response: httpx.Response) -> tuple[str, str | None]:
    """Extract (detail, field) from a Mailchimp error answer (see `problem_reason`)."""
    body = _body(response)
    if not body:
        return text_reason(response), None
    return problem_reason(body, response.status_code)


def problem_reason(body: Mapping[str, Any], status: int) -> tuple[str, str | None]:
    """(reason, field) of a problem document, direct or inside a batch result.

    The reason is `title: detail` plus each field error's message, so a reject says
    what Mailchimp said; the field is the first field error's name, if any.
    """
    title = str(body.get("title") or "").strip()
    detail = str(body.get("detail") or "").strip()
    text = f"{title}: {detail}" if title and detail else (title or detail)
    field: str | None = None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, dict):
                name = str(error.get("field") or "")
                field = field or name or None
                parts.append(f"{name}: {error.get('message', '')}".strip(": "))
        if parts:
            text = f"{text} ({'; '.join(parts)})"
    return text or f"HTTP {status}", field


def is_throttling(response: httpx.Response) -> bool:
    """True for a 403 that is throttling (retryable) rather than refused access."""
    if response.status_code != 403:
        return False
    body = _body(response)
    words = f"{body.get('title', '')} {body.get('detail', '')}".lower()
    return any(word in words for word in _THROTTLE_WORDS)


def classify_403(response: httpx.Response) -> None:
    """Raise `RateLimited` for a throttling 403 and `AuthFailed` for any other 403."""
    if is_throttling(response):
        raise RateLimited(f"403 throttled on {response.url.path}", retry_after_seconds(response))
    detail, _ = parse_problem(response)
    raise AuthFailed(f"403 from {response.url.path}: {detail}")


def is_member_refusal(title: str) -> bool:
    """True for the titles that mean this person cannot be subscribed."""
    return title in MEMBER_REFUSALS
