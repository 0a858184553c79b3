"""Checks before send: email and E.164 syntax, Mailchimp merge tags, Klaviyo limits.

Each check returns `Violation`s (field + reason); `reject` turns them into
`RejectedRow`s naming the record, the field and the reason, so a connector never sends
what the ESP would refuse, and never drops it silently either.

Limits, with their sources:
- Klaviyo event `properties`: at most 400 properties, each string ≤ 100 KB; metric
  `name` less than 128 characters; 100 KB per profile (Klaviyo OpenAPI 2026-07-15,
  `create_event`, `bulk_create_events`, `create_profile`).
- Mailchimp merge tags: at most 10 characters (esp-api-contracts.md §2.6, users' issue
  "merge-tag 10-character truncation"); we also require A-Z, 0-9 and `_`, the charset
  Mailchimp generates. Event `name` 2-30 characters, `properties` string values
  (Mailchimp 3.0.55 spec, `postListMemberEvents`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from mapping.types import RejectedRow

KLAVIYO_MAX_PROPERTIES = 400
KLAVIYO_MAX_STRING_BYTES = 100 * 1024
KLAVIYO_MAX_METRIC_NAME = 127
KLAVIYO_MAX_PROFILE_BYTES = 100 * 1024
MAILCHIMP_MAX_TAG = 10
MAILCHIMP_MAX_TEXT = 255
MAILCHIMP_EVENT_NAME = (2, 30)

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")


@dataclass(frozen=True, slots=True)
class Violation:
    """One field that would be refused, and why."""

    field: str
    reason: str


def is_email(value: object) -> bool:
    """Pragmatic address syntax: local@domain.tld, no spaces, ≤ 254 characters."""
    if type(value) is str:
        return _is_email_text(value)  # memoised: a customer's address recurs
    return _is_email(value)


def _is_email(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 254 or ".." in value:
        return False
    local, _, _ = value.partition("@")
    return len(local) <= 64 and _EMAIL.match(value) is not None


_is_email_text = lru_cache(maxsize=1 << 16)(_is_email)


def is_e164(value: object) -> bool:
    """`+` then country code and number, 8 to 16 characters in all."""
    return isinstance(value, str) and _E164.match(value) is not None


def is_merge_tag(value: object) -> bool:
    """A Mailchimp merge tag: 1-10 of A-Z, 0-9 and `_`."""
    return isinstance(value, str) and _MERGE_TAG.match(value) is not None


def check_email(value: Any, field: str = "email") -> list[Violation]:
    """Email syntax."""
    if type(value) is str and _is_email_text(value):  # `is_email`, inlined: once a record
        return []
    return [] if is_email(value) else [Violation(field, f"not an email address: {_show(value)}")]


def check_phone(value: Any, field: str = "phone_number") -> list[Violation]:
    """E.164 syntax (use the `e164` transform to convert local numbers)."""
    if is_e164(value):
        return []
    return [Violation(field, f"not an E.164 phone number (+<country><number>): {_show(value)}")]


def check_klaviyo_properties(
    properties: Mapping[str, Any], field: str = "properties"
) -> list[Violation]:
    """At most 400 properties; no string longer than 100 KB (at any depth)."""
    found: list[Violation] = []
    if len(properties) > KLAVIYO_MAX_PROPERTIES:
        found.append(Violation(field, f"{len(properties)} properties; Klaviyo allows at most 400"))
    for path, text in _strings(properties, field):
        size = len(text.encode())
        if size > KLAVIYO_MAX_STRING_BYTES:
            found.append(Violation(path, f"string of {size} bytes; Klaviyo allows 100 KB"))
    return found


def check_klaviyo_metric(name: Any, field: str = "metric.name") -> list[Violation]:
    """A metric name: non-empty, fewer than 128 characters."""
    if type(name) is str and 0 < len(name) <= KLAVIYO_MAX_METRIC_NAME and not name.isspace():
        return []  # the common case: `not name.strip()` is `not name or name.isspace()`
    if not isinstance(name, str) or not name.strip():
        return [Violation(field, "a metric needs a name")]
    if len(name) > KLAVIYO_MAX_METRIC_NAME:
        return [Violation(field, f"{len(name)} characters; must be less than 128")]
    return []


def check_klaviyo_profile(attributes: Mapping[str, Any], field: str = "profile") -> list[Violation]:
    """Profile identifiers, properties and the 100 KB size."""
    found: list[Violation] = []
    if not any(attributes.get(k) for k in ("email", "phone_number", "external_id", "id")):
        found.append(Violation(field, "a profile needs email, phone_number, external_id or id"))
    if attributes.get("email") is not None:
        found += check_email(attributes["email"], f"{field}.email")
    if attributes.get("phone_number") is not None:
        found += check_phone(attributes["phone_number"], f"{field}.phone_number")
    props = attributes.get("properties")
    if isinstance(props, Mapping):
        found += check_klaviyo_properties(props, f"{field}.properties")
    size = len(orjson.dumps(attributes, default=str))
    if size > KLAVIYO_MAX_PROFILE_BYTES:
        found.append(Violation(field, f"profile of {size} bytes; Klaviyo allows 100 KB"))
    return found


def check_merge_fields(
    merge_fields: Mapping[str, Any], field: str = "merge_fields", max_text: int = MAILCHIMP_MAX_TEXT
) -> list[Violation]:
    """Merge tags (≤ 10 chars, A-Z0-9_) and scalar values of at most `max_text` characters."""
    found: list[Violation] = []
    for tag, value in merge_fields.items():
        path = f"{field}.{tag}"
        if not is_merge_tag(tag):
            found.append(Violation(path, "a merge tag is 1-10 characters of A-Z, 0-9 and _"))
        if isinstance(value, str) and len(value) > max_text:
            found.append(Violation(path, f"{len(value)} characters; at most {max_text}"))
        elif isinstance(value, list):
            found.append(Violation(path, "a merge field value cannot be a list"))
    return found


def check_mailchimp_event(
    name: Any, properties: Mapping[str, Any], field: str = "event"
) -> list[Violation]:
    """Event name of 2-30 characters; property values must be strings."""
    found: list[Violation] = []
    low, high = MAILCHIMP_EVENT_NAME
    if not isinstance(name, str) or not low <= len(name) <= high:
        found.append(Violation(f"{field}.name", f"must be {low}-{high} characters: {_show(name)}"))
    for key, value in properties.items():
        if not isinstance(value, str):
            found.append(
                Violation(f"{field}.properties.{key}", "Mailchimp event properties are strings")
            )
    return found


def reject(
    source_ref: str,
    violations: Iterable[Violation],
    *,
    stage: str = "mapping",
    destination: str | None = None,
    key: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> list[RejectedRow]:
    """`RejectedRow`s for a record's violations (one per field), empty if none.

    Args:
        source_ref: The record: file:line, table:pk or messageId.
        violations: What `check_*` found.
        stage: Where it was rejected.
        destination: Destination name.
        key: The record's idempotency key.
        payload: The record, for `espbridge retry`.
    """
    if type(violations) is list and not violations:
        return []  # the common case, without building the comprehension
    return [
        RejectedRow(
            source_ref=source_ref,
            field=v.field,
            reason=v.reason,
            stage=stage,
            payload=dict(payload or {}),
            destination=destination,
            key=key,
        )
        for v in violations
    ]


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        if len(value) > KLAVIYO_MAX_STRING_BYTES // 4:  # only long strings can be too big
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _show(value: Any) -> str:
    return repr(value)[:60]
