"""Validation of Segment-spec messages (track, identify, page, screen, alias, group).

Hand-written rather than a pydantic model: this runs once per event on the hot path
(≥ 100k events/s/core), and each failure must name the exact field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from mapping.blank import BLANK_STARTS, is_blank_text
from mapping.types import MESSAGE_TYPES, Message

_EMPTY: Mapping[str, Any] = {}

BLANK_MESSAGE_ID = "blank: only white space or invisible characters"
"""Why a messageId such as `"   "` is refused (ingest and every source say the same)."""


class MessageError(ValueError):
    """A message that breaks the Segment spec; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_timestamp(value: object, field: str = "timestamp") -> datetime:
    """Parse an ISO-8601 timestamp into an aware UTC datetime.

    Naive timestamps are taken as UTC, which is what Segment libraries send.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise MessageError(field, f"not an ISO-8601 timestamp: {value[:40]!r}") from None
    else:
        raise MessageError(field, "missing" if value in (None, "") else "must be a string")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _optional_id(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if type(value) is str and value:  # the hot path
        return value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Segment libraries coerce numeric ids to strings
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MessageError(key, f"must be a string or a finite number, got {value!r}")
        # A whole float (`123.0`: JSON writers emit integer columns with gaps so) is the
        # integer's id, as Segment's JavaScript libraries print it: `123`, not `123.0`.
        return str(int(value)) if value.is_integer() else str(value)
    raise MessageError(key, "must be a string")


def check_previous_id(raw: Mapping[str, Any]) -> None:
    """An alias call's `previousId`: a non-blank string, or a number (not a boolean)."""
    previous = raw.get("previousId")
    if isinstance(previous, str) and previous.strip():
        return
    if isinstance(previous, int) and not isinstance(previous, bool):
        return
    if isinstance(previous, float) and math.isfinite(previous):
        return
    if previous is None or isinstance(previous, str):
        raise MessageError("previousId", "an alias call needs a previousId")
    raise MessageError("previousId", f"must be a string or a number, got {previous!r}"[:80])


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if type(value) is dict:  # the hot path
        return value
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise MessageError(key, "must be an object")
    return cast(Mapping[str, Any], value)


def parse_message(raw: object, source_ref: str) -> Message:
    """Validate one decoded JSON value as a Segment message.

    The checks run in the order of the spec's fields, so the first broken field is the
    one named; each tests the common case (a `str`, a `dict`) inline before the general
    helper, which decides everything else.

    Args:
        raw: The decoded JSON value.
        source_ref: Where it was read, carried into the message and any error.

    Raises:
        MessageError: naming the first field that breaks the spec.
    """
    if not isinstance(raw, dict):
        raise MessageError("$", "a message must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise MessageError("type", f"must be one of {sorted(MESSAGE_TYPES)}, got {kind!r}")
    message_id = raw.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        missing = message_id is None or message_id == ""
        raise MessageError("messageId", "missing" if missing else "must be a string")
    if message_id[0] in BLANK_STARTS and is_blank_text(message_id):
        # It would be the dedup key of every other blank one: they would pass as duplicates.
        raise MessageError("messageId", BLANK_MESSAGE_ID)
    if "\x00" in message_id:  # PostgreSQL text cannot hold it: the ledger write would fail
        raise MessageError("messageId", "contains a NUL character")
    stamp = raw.get("timestamp") or raw.get("originalTimestamp")
    if type(stamp) is str and stamp:
        try:
            timestamp = _fromisoformat(stamp)
        except ValueError:
            raise MessageError("timestamp", f"not an ISO-8601 timestamp: {stamp[:40]!r}") from None
        zone = timestamp.tzinfo
        if zone is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        elif zone is not UTC:  # `astimezone(UTC)` returns a UTC time itself
            timestamp = timestamp.astimezone(UTC)
    else:
        timestamp = parse_timestamp(stamp)
    user_id = raw.get("userId")
    if user_id is not None and (type(user_id) is not str or not user_id):
        user_id = _optional_id(raw, "userId")
    anonymous_id = raw.get("anonymousId")
    if anonymous_id is not None and (type(anonymous_id) is not str or not anonymous_id):
        anonymous_id = _optional_id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError("userId", "a message needs a userId or an anonymousId")
    event: str | None = None
    if kind == "track":
        event = raw.get("event")
        if type(event) is str:  # `not event.strip()`, without building the stripped text
            blank = not event or event.isspace()
        else:
            blank = not isinstance(event, str) or not event.strip()
        if blank:
            raise MessageError("event", "a track call needs an event name")
    elif kind == "alias":
        check_previous_id(raw)
    context = raw.get("context")
    if type(context) is not dict:
        context = _mapping(raw, "context")
    traits = _mapping(raw, "traits") if kind in ("identify", "group") else None
    if not traits:
        context_traits = context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else _EMPTY
    properties = raw.get("properties")
    if type(properties) is not dict:
        properties = _mapping(raw, "properties")
    # A `_Draft`, filled by plain slot stores, then made a `Message`: the frozen
    # dataclass's __init__ sets each field through `object.__setattr__`, which costs
    # as much as all the checks above.
    message: Any = _new(_Draft)
    message.type = kind
    message.message_id = message_id
    message.timestamp = timestamp
    message.user_id = user_id
    message.anonymous_id = anonymous_id
    message.event = event
    message.traits = traits
    message.properties = properties
    message.raw = raw
    message.source_ref = source_ref
    message.__class__ = Message  # same slots: see `_Draft`
    return message  # type: ignore[no-any-return]  # a Message now


class _Draft:
    """A `Message` being built: the same slots, without the frozen `__setattr__`.

    Python lets an object change `__class__` between classes with the same slots and
    base; the result is a plain `Message`, as its constructor would have made it.
    """

    __slots__ = Message.__slots__


_new = object.__new__
_fromisoformat = datetime.fromisoformat
_FIELDS = (
    "type", "message_id", "timestamp", "user_id", "anonymous_id", "event", "traits",
    "properties", "raw", "source_ref",
)  # fmt: skip
if tuple(f.name for f in dataclasses.fields(Message)) != _FIELDS or hasattr(
    Message, "__post_init__"
):
    raise RuntimeError("parse_message fills Message's fields itself: update it with Message")
object.__setattr__(_new(_Draft), "__class__", Message)  # fails here if the layouts differ
