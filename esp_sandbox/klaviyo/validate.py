"""Klaviyo's semantic limits beyond the JSON schema (esp-api-contracts.md §1.2-1.5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers

from esp_sandbox.klaviyo.errors import KlaviyoError, error_object
from esp_sandbox.klaviyo.spec import BodyIssue

MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
MAX_STRING_BYTES = 100 * 1024
MAX_EVENT_PROPERTIES = 400
MAX_METRIC_NAME = 127
EARLIEST_EVENT = datetime(1990, 1, 1, tzinfo=UTC)
_PHONE_NOISE = re.compile(r"[\s().\-]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def raise_issues(issues: list[BodyIssue], status: int = 400, code: str = "invalid") -> None:
    """Raise one Klaviyo error response carrying every issue (no-op when empty)."""
    if issues:
        errors = [error_object(status, code, i.detail, pointer=i.pointer) for i in issues]
        raise KlaviyoError.many(status, errors)


def parse_time(value: str) -> datetime | None:
    """An ISO-8601 timestamp as aware UTC, or None when unparsable."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def normalize_phone(value: str) -> str | None:
    """E.164 form of a phone number, or None when it is not one.

    The number must carry its `+` country code (a known one) and 7 to 15
    digits; spaces, dashes, dots and brackets are tolerated and dropped. Whether
    the number is actually assignable is not checked (peers send test numbers).
    """
    compact = _PHONE_NOISE.sub("", value)
    if not _E164.match(compact):
        return None
    try:
        number = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_country_code(number.country_code or 0) == "ZZ":
        return None
    return compact


def identifier_issues(attrs: dict[str, Any], pointer: str) -> list[BodyIssue]:
    """Invalid email or non-E.164 phone inside profile attributes."""
    issues: list[BodyIssue] = []
    email = attrs.get("email")
    if isinstance(email, str) and not _EMAIL.match(email):
        issues.append(BodyIssue(f"{pointer}/email", f"Invalid email address: '{email}'."))
    phone = attrs.get("phone_number")
    if isinstance(phone, str) and normalize_phone(phone) is None:
        issues.append(
            BodyIssue(f"{pointer}/phone_number", f"Invalid phone number format: '{phone}'.")
        )
    return issues


def has_identifier(profile_id: Any, attrs: dict[str, Any], *, allow_anonymous: bool) -> bool:
    """Whether a profile object names at least one usable identifier."""
    names = ["email", "phone_number", "external_id", "_kx"]
    if allow_anonymous:
        names.append("anonymous_id")
    return bool(profile_id) or any(attrs.get(name) for name in names)


def event_issues(attrs: dict[str, Any], pointer: str, now: datetime) -> list[BodyIssue]:
    """Time bounds, metric name length and property count of one event's attributes."""
    issues: list[BodyIssue] = []
    raw_time = attrs.get("time")
    if isinstance(raw_time, str):
        parsed = parse_time(raw_time)
        if parsed is None:
            issues.append(BodyIssue(f"{pointer}/time", f"Invalid datetime: '{raw_time}'."))
        elif parsed < EARLIEST_EVENT or parsed > now + timedelta(days=365):
            issues.append(
                BodyIssue(
                    f"{pointer}/time",
                    "Event time must be after 1990-01-01 and no more than 1 year in the future.",
                )
            )
    name = attrs.get("metric", {}).get("data", {}).get("attributes", {}).get("name")
    if isinstance(name, str) and len(name) > MAX_METRIC_NAME:
        issues.append(
            BodyIssue(
                f"{pointer}/metric/data/attributes/name",
                "Metric name must be less than 128 characters.",
            )
        )
    props = attrs.get("properties")
    if isinstance(props, dict) and len(props) > MAX_EVENT_PROPERTIES:
        issues.append(
            BodyIssue(
                f"{pointer}/properties",
                f"Events may have at most {MAX_EVENT_PROPERTIES} properties; got {len(props)}.",
            )
        )
    return issues


def long_strings(node: Any, pointer: str = "") -> list[BodyIssue]:
    """Every string longer than 100 KB (UTF-8), with its pointer."""
    if not _has_long_string(node):
        return []
    issues: list[BodyIssue] = []
    if isinstance(node, str):
        if len(node) * 4 > MAX_STRING_BYTES and len(node.encode()) > MAX_STRING_BYTES:
            issues.append(BodyIssue(pointer or "/", "String values may not exceed 100KB."))
    elif isinstance(node, dict):
        for key, value in node.items():
            issues += long_strings(value, f"{pointer}/{_escape(str(key))}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            issues += long_strings(value, f"{pointer}/{index}")
    return issues


def _has_long_string(node: Any) -> bool:
    """Cheap pre-scan (no pointers built): is any string over 100 KB?"""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) * 4 > MAX_STRING_BYTES and len(item.encode()) > MAX_STRING_BYTES:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_payload_size(raw: bytes, limit: int = MAX_PAYLOAD_BYTES) -> None:
    """413 when the raw body is larger than `limit` bytes."""
    if len(raw) > limit:
        raise KlaviyoError(
            413,
            "payload_too_large",
            f"The request payload is {len(raw)} bytes; the maximum is {limit} bytes.",
        )


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
