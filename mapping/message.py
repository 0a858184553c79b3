"""Validation of Segment-spec messages (track, identify, page, screen, alias, group).

Hand-written rather than a pydantic model: this runs once per event on the hot path
(≥ 100k events/s/core), and each failure must name the exact field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from mapping.types import MESSAGE_TYPES, Message, MessageType

_EMPTY: Mapping[str, Any] = {}


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
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # Segment libraries coerce numeric ids to strings
    raise MessageError(key, "must be a string")


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
        raise MessageError("messageId", "missing" if message_id is None else "must be a string")
    timestamp = parse_timestamp(raw.get("timestamp") or raw.get("originalTimestamp"))
    user_id = _optional_id(raw, "userId")
    anonymous_id = _optional_id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MessageError("userId", "a message needs a userId or an anonymousId")
    event: str | None = None
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("event", "a track call needs an event name")
    if kind == "alias" and not isinstance(raw.get("previousId"), str | int):
        raise MessageError("previousId", "an alias call needs a previousId")
    context = _mapping(raw, "context")
    traits = _mapping(raw, "traits") if kind in ("identify", "group") else None
    if not traits:
        context_traits = context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else _EMPTY
    return Message(
        type=cast(MessageType, kind),
        message_id=message_id,
        timestamp=timestamp,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=event,
        traits=traits,
        properties=_mapping(raw, "properties"),
        raw=raw,
        source_ref=source_ref,
    )
