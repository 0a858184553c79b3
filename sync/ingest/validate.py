"""Checking what a Segment library sends, message by message, before it is stored.

Each message of a batch is judged on its own: a bad one is refused with the field
and the reason, and the others are still stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from mapping.message import MessageError, parse_message, parse_timestamp
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
        payload: The message (redacted), or a summary when it is too large to keep.
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


def _message_id(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """The messageId, or None and the reason it is unusable."""
    value = message.get("messageId")
    if value is None or value == "":
        return None, "missing: every message needs a messageId (Segment libraries set one)"
    if not isinstance(value, str):
        return None, "must be a string"
    if len(value) > MESSAGE_ID_MAX:
        return None, f"longer than {MESSAGE_ID_MAX} characters"
    return value, None


def _summary(message: Any, size: int) -> dict[str, Any]:
    if isinstance(message, dict):
        return {
            "messageId": str(message.get("messageId"))[:MESSAGE_ID_MAX],
            "type": str(message.get("type"))[:40],
            "bytes": size,
        }
    return {"bytes": size}


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
        payload = {"value": message} if len(orjson.dumps(message)) <= max_bytes else {}
        return InvalidMessage(index, None, "$", "a message must be a JSON object", payload)
    message = {k: v for k, v in message.items() if k != WRITE_KEY}
    if call_type is not None:
        message["type"] = call_type  # Segment takes the type from the route
    size = len(orjson.dumps(message))
    message_id, problem = _message_id(message)
    if size > max_bytes:
        reason = f"message is {size} bytes; at most {max_bytes} bytes per message"
        return InvalidMessage(index, message_id, "$", reason, _summary(message, size))
    if message_id is None:
        return InvalidMessage(index, None, "messageId", str(problem), redact(message))
    if sent_at is not None and "sentAt" not in message:
        message["sentAt"] = sent_at
    message["receivedAt"] = _iso(received_at)
    _correct_clock(message, received_at)
    if not isinstance(message.get("type"), str):  # parse_message needs a hashable type
        reason = f"must be a string, got {type(message.get('type')).__name__}"
        return InvalidMessage(index, message_id, "type", reason, redact(message))
    try:
        parse_message(message, f"ingest:{message_id}")
    except MessageError as exc:
        return InvalidMessage(index, message_id, exc.field, exc.reason, redact(message))
    return ValidMessage(index, message_id, orjson.dumps(message).decode())
