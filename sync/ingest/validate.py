"""Checking what a Segment library sends, message by message, before it is stored.

Each message of a batch is judged on its own: a bad one is refused with the field
and the reason, and the others are still stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from mapping.blank import is_blank_text
from mapping.message import BLANK_MESSAGE_ID, MessageError, parse_message, parse_timestamp
from sync.redact import redact
from sync.store.inbox import MESSAGE_ID_MAX

WRITE_KEY = "writeKey"


@dataclass(frozen=True, slots=True)
class ValidMessage:
    """A message ready for the inbox.

    Attributes:
        index: Position in the request's batch (0 for a single call).
        message_id: Its `messageId`.
        raw: The message as JSON text (write key removed, `receivedAt` added).
    """

    index: int
    message_id: str
    raw: str


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A message refused, with the field and the reason (kept in the rejects ledger).

    Attributes:
        index: Position in the request's batch.
        message_id: Its `messageId`, when it had a usable one.
        field: The offending field (`messageId`, `event`, `$` for the whole message).
        reason: What is wrong.
        payload: The message (redacted), or a summary when it is too large to keep or
            cannot be written as JSON.
    """

    index: int
    message_id: str | None
    field: str
    reason: str
    payload: dict[str, Any]


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _correct_clock(message: dict[str, Any], received_at: datetime) -> None:
    """Segment's rules: timestamp = receivedAt - (sentAt - originalTimestamp), else receivedAt."""
    if message.get("timestamp"):
        return
    if not message.get("originalTimestamp"):
        message["timestamp"] = _iso(received_at)
        return
    try:
        original = parse_timestamp(message["originalTimestamp"], "originalTimestamp")
        sent = parse_timestamp(message.get("sentAt"), "sentAt")
    except MessageError:
        return  # parse_message reports a bad originalTimestamp; without sentAt, keep it
    skew: timedelta = sent - original
    message["timestamp"] = _iso(received_at - skew)


_TIMESTAMPS = ("timestamp", "originalTimestamp", "sentAt")
_OUT_OF_RANGE = "out of range: years 1 to 9999 in UTC, also once corrected for clock skew"


def _out_of_range(message: dict[str, Any]) -> str:
    """The timestamp field that overflows in UTC (`timestamp` when only the skew does)."""
    for field in _TIMESTAMPS:
        try:
            parse_timestamp(message.get(field), field)
        except OverflowError:
            return field
        except MessageError:
            continue
    return "timestamp"


_NEEDED = "every message needs a messageId (Segment libraries set one)"


def _message_id(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """The messageId, or None and the reason it is unusable."""
    value = message.get("messageId")
    if value is None or value == "":
        return None, f"missing: {_NEEDED}"
    if not isinstance(value, str):
        return None, "must be a string"
    if is_blank_text(value):  # not a usable id: every blank one would dedupe the next
        return None, f"{BLANK_MESSAGE_ID}: {_NEEDED}"
    if len(value) > MESSAGE_ID_MAX:
        return None, f"longer than {MESSAGE_ID_MAX} characters"
    if "\x00" in value:  # PostgreSQL text cannot hold it, not even in the rejects ledger
        return None, "contains a NUL character"
    return value, None


_SENT_AT_MAX = 64
"""Longest batch-level `sentAt` copied into its calls (an ISO-8601 time is under 40)."""


def _is_batch_sent_at(value: Any) -> bool:
    """Whether a batch's `sentAt` may be copied into each of its calls: a short string.

    Anything else cannot serve the clock-skew rule, its only use, and copied into every
    call a long one would multiply a 500 KB body into gigabytes of stored messages.
    """
    return isinstance(value, str) and 0 < len(value) <= _SENT_AT_MAX


def _encoded_size(value: Any) -> tuple[int, str | None]:
    """Bytes of `value` as compact JSON, or 0 and why it cannot be written as JSON
    (orjson reads 1024 levels of nesting but writes 254, and no integer over 64 bits)."""
    try:
        return len(orjson.dumps(value)), None
    except orjson.JSONEncodeError as exc:
        return 0, f"cannot be stored as JSON: {exc}"


def _summary(message: Any, size: int | None) -> dict[str, Any]:
    bytes_ = {} if size is None else {"bytes": size}
    if isinstance(message, dict):
        return {
            "messageId": str(message.get("messageId"))[:MESSAGE_ID_MAX],
            "type": str(message.get("type"))[:40],
            **bytes_,
        }
    return bytes_


def check_message(
    index: int,
    message: Any,
    *,
    received_at: datetime,
    sent_at: Any,
    call_type: str | None,
    max_bytes: int,
) -> ValidMessage | InvalidMessage:
    """Judge one message of a request.

    Args:
        index: Its position in the batch.
        message: The decoded JSON value.
        received_at: When the request arrived (becomes `receivedAt`).
        sent_at: The batch's `sentAt`, used when the message has none.
        call_type: The type implied by the route (`/v1/track` → `track`), if any.
        max_bytes: Largest message as compact JSON.
    """
    if not isinstance(message, dict):
        size, unencodable = _encoded_size(message)
        payload = {"value": message} if unencodable is None and size <= max_bytes else {}
        return InvalidMessage(index, None, "$", "a message must be a JSON object", payload)
    message = {k: v for k, v in message.items() if k != WRITE_KEY}
    if call_type is not None:
        message["type"] = call_type  # Segment takes the type from the route
    message_id, problem = _message_id(message)
    size, unencodable = _encoded_size(message)
    if unencodable is not None:
        return InvalidMessage(index, message_id, "$", unencodable, _summary(message, None))
    if size > max_bytes:
        reason = f"message is {size} bytes; at most {max_bytes} bytes per message"
        return InvalidMessage(index, message_id, "$", reason, _summary(message, size))
    if message_id is None:
        return InvalidMessage(index, None, "messageId", str(problem), redact(message))
    if _is_batch_sent_at(sent_at) and "sentAt" not in message:
        message["sentAt"] = sent_at
    message["receivedAt"] = _iso(received_at)
    if not isinstance(message.get("type"), str):  # parse_message needs a hashable type
        reason = f"must be a string, got {type(message.get('type')).__name__}"
        return InvalidMessage(index, message_id, "type", reason, redact(message))
    try:
        _correct_clock(message, received_at)
        parse_message(message, f"ingest:{message_id}")
    except MessageError as exc:
        return InvalidMessage(index, message_id, exc.field, exc.reason, redact(message))
    except OverflowError:  # datetime's years 1-9999, crossed by a time zone or the skew
        field = _out_of_range(message)
        return InvalidMessage(index, message_id, field, _OUT_OF_RANGE, redact(message))
    return ValidMessage(index, message_id, orjson.dumps(message).decode())
