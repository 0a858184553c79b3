"""Member event: `POST /lists/{id}/members/{hash}/events`.

Event names are normalised to what Mailchimp accepts (2-30 characters): accents are
folded to ASCII, the name is lower-cased, every run of characters other than
`a-z`, `0-9`, `_` and `-` becomes one `_`, leading and trailing `_` are dropped, and
the result is cut to 30 characters. `Cart Abandoned` → `cart_abandoned`,
`Order Completed (web)` → `order_completed_web`, `Café visité` → `cafe_visite`.
A name shorter than 2 characters after that is rejected.

Property values are sent as strings (booleans `true`/`false`, numbers as written,
objects and lists as compact JSON; null properties are left out), `occurred_at` is
the message timestamp in UTC. Mailchimp keeps no idempotency key for events, so the
record's key travels as the `espbridge_key` property: it is what espbridge reads
back (`GET …/events`) before sending again after a lost answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from connectors.mailchimp.actions import ApiRequest, BatchLimits, email_field, list_field
from connectors.mailchimp.hashing import subscriber_hash
from connectors.mailchimp.settings import MailchimpSettings
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "member_event"
TITLE = "Member event"
KEY_PROPERTY = "espbridge_key"
NAME_MIN, NAME_MAX = 2, 30
READ_PAGE = 1000
FIELDS: dict[str, FieldSpec] = {
    "email": email_field(),
    "list_id": list_field(),
    "name": FieldSpec(path=["event"], required=True),
    "properties": FieldSpec(path=["properties"]),
    "occurred_at": FieldSpec(path=["timestamp"], required=True),
}
DESCRIPTIONS = {
    "list_id": "The audience, when a message names its own (else the destination's list_id).",
    "email": "The member's email address; the member must be in the audience.",
    "name": "Event name, normalised to 2-30 characters of a-z, 0-9, _ and -.",
    "properties": "Event properties; every value is sent as a string.",
    "occurred_at": "When it happened; sent in UTC.",
}
LIMITS = BatchLimits(default=1, maximum=1)
_DISALLOWED = re.compile(r"[^a-z0-9_-]+")


def subscribes(message: Message, settings: MailchimpSettings) -> bool:
    """Track calls, limited to `events` when set; journey events only when asked."""
    if message.type != "track" or not message.event:
        return False
    if message.event in settings.journeys and not settings.journey_events_as_member_events:
        return False
    return settings.events is None or message.event in settings.events


def normalise_name(name: str) -> str:
    """Mailchimp's event name for a Segment event name (rule in the module docstring).

    Raises:
        ValueError: Fewer than 2 characters remain.
    """
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = _DISALLOWED.sub("_", folded.lower()).strip("_")
    text = text[:NAME_MAX].rstrip("_")
    if len(text) < NAME_MIN:
        raise ValueError(
            f"event name {name!r} gives {text!r}: Mailchimp needs {NAME_MIN}-{NAME_MAX} characters"
        )
    return text


def property_value(value: Any) -> str:
    """A property value as the string Mailchimp stores."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    return str(value)


def string_properties(properties: Mapping[str, Any] | None, key: str) -> dict[str, str]:
    """Every non-null property as a string, plus `espbridge_key`."""
    out = {
        str(name): property_value(value)
        for name, value in (properties or {}).items()
        if value is not None
    }
    out[KEY_PROPERTY] = key
    return out


def event_body(fields: Mapping[str, Any], is_syncing: bool) -> dict[str, Any]:
    """The event object: name, string properties, is_syncing, occurred_at."""
    return {
        "name": fields["name"],
        "properties": dict(fields["properties"]),
        "is_syncing": is_syncing,
        "occurred_at": fields["occurred_at"],
    }


def build_request(list_id: str, fields: Mapping[str, Any], is_syncing: bool) -> ApiRequest:
    """`POST /lists/{list_id}/members/{hash}/events`."""
    return ApiRequest(
        "POST",
        f"/lists/{list_id}/members/{subscriber_hash(fields['email'])}/events",
        event_body(fields, is_syncing),
    )


def build_read_request(list_id: str, email: str, offset: int = 0) -> ApiRequest:
    """`GET /lists/{list_id}/members/{hash}/events`, one page of up to 1000."""
    return ApiRequest(
        "GET",
        f"/lists/{list_id}/members/{subscriber_hash(email)}/events",
        params={"count": READ_PAGE, "offset": offset},
    )


def keys_in(page: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(event name, espbridge_key) of every event on a read-back page that has a key."""
    for event in page.get("events") or []:
        properties = event.get("properties") or {}
        key = properties.get(KEY_PROPERTY) if isinstance(properties, Mapping) else None
        if key:
            yield str(event.get("name", "")), str(key)
