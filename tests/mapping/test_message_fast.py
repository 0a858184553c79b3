"""`parse_message` (inlined hot paths, slot-by-slot `Message`) against the plain version.

The reference below is `parse_message` as it was written before it was tuned: every
field through its helper and the dataclass constructor. Both must accept the same
messages, build equal messages (the same objects inside) and name the same field, with
the same reason, for the same broken message.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.blank import is_blank_text
from mapping.message import (
    _EMPTY,
    BLANK_MESSAGE_ID,
    MessageError,
    _mapping,
    _optional_id,
    check_previous_id,
    parse_message,
    parse_timestamp,
)
from mapping.types import MESSAGE_TYPES, Message, MessageType


def reference(raw: object, source_ref: str) -> Message:
    """`parse_message`, the straightforward way."""
    if not isinstance(raw, dict):
        raise MessageError("$", "a message must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise MessageError("type", f"must be one of {sorted(MESSAGE_TYPES)}, got {kind!r}")
    message_id = raw.get("messageId")
    if message_id is None or message_id == "":
        raise MessageError("messageId", "missing")
    if not isinstance(message_id, str):
        raise MessageError("messageId", "must be a string")
    if is_blank_text(message_id):
        raise MessageError("messageId", BLANK_MESSAGE_ID)
    if "\x00" in message_id:
        raise MessageError("messageId", "contains a NUL character")
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
    if kind == "alias":
        check_previous_id(raw)
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


class Text(str):
    """A `str` that is not exactly `str` (the general paths)."""


def outcome(raw: object, parse: Any = parse_message) -> tuple[Any, ...]:
    """The message (its values, and which objects it holds) or the error."""
    try:
        message = parse(raw, "f:1")
    except MessageError as exc:
        return ("error", exc.field, exc.reason, str(exc))
    fields = dataclasses.astuple(message)
    types = tuple(type(value) for value in fields)
    taken = ("type", "message_id", "event", "traits", "properties", "raw")  # not copies
    held = tuple(id(getattr(message, name)) for name in taken)
    stamp = message.timestamp
    given = raw.get("timestamp") or raw.get("originalTimestamp") if isinstance(raw, dict) else None
    return ("ok", fields, types, held, stamp.tzinfo, stamp is given)


def expected(raw: object) -> tuple[Any, ...]:
    return outcome(raw, reference)


ANY: list[Any] = [None, "", " ", 0, 1, 2.5, True, False, [], {}, ["x"], {"a": 1}]
IDS = [*ANY, "u1", Text("u2"), "  ", 42, 4.0, "m\x001", "\u200b", Text(" "), Text(""), " m "]
STAMPS = [
    *ANY,
    "2026-01-05T00:05:33.118Z",
    "2026-01-05T00:05:33.118+02:00",
    "2026-01-05T00:05:33",
    "2026-01-05",
    "2026-02-30T00:00:00Z",
    "not a time",
    Text("2026-01-05T00:05:33Z"),
    datetime(2026, 1, 5, tzinfo=UTC),
    datetime(2026, 1, 5),
    datetime(2026, 1, 5, tzinfo=timezone(timedelta(0))),
    datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=3))),
]
OBJECTS = [None, {}, {"a": 1}, {"traits": {"email": "a@b.co"}}, {"traits": "x"}, "x", [], 0]
FIELDS: dict[str, list[Any]] = {
    "type": [*ANY, *sorted(MESSAGE_TYPES), "Track", Text("track")],
    "messageId": IDS,
    "timestamp": STAMPS,
    "originalTimestamp": STAMPS,
    "userId": IDS,
    "anonymousId": IDS,
    "event": [*ANY, "Order Completed", "  ", Text("E")],
    "previousId": IDS,
    "context": OBJECTS,
    "traits": OBJECTS,
    "properties": OBJECTS,
}
raws = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in FIELDS.items()})
valid = st.fixed_dictionaries(
    {
        "type": st.sampled_from(sorted(MESSAGE_TYPES)),
        "messageId": st.just("m1"),
        "timestamp": st.sampled_from(STAMPS),
        "anonymousId": st.sampled_from(["a1", "", None]),
    },
    optional={
        k: st.sampled_from(v)
        for k, v in FIELDS.items()
        if k not in ("type", "messageId", "timestamp", "anonymousId")
    },
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(raws, valid, st.sampled_from([None, [], "x", 1])))
def test_parse_message_matches_the_reference(raw: object) -> None:
    assert outcome(raw) == expected(raw)


def test_a_message_is_a_plain_equal_dataclass() -> None:
    raw = {
        "type": "track",
        "messageId": "m1",
        "timestamp": "2026-01-05T00:05:33.118Z",
        "userId": "u1",
        "event": "Order Completed",
        "properties": {"price": 1},
    }
    message = parse_message(raw, "f:1")
    assert message == reference(raw, "f:1")
    assert repr(message) == repr(reference(raw, "f:1"))
    assert message.timestamp.tzinfo is UTC
    assert dataclasses.replace(message, event="E").event == "E"


def test_whole_float_ids_are_the_integer_s_id() -> None:
    base = {"type": "track", "messageId": "m1", "event": "E", "timestamp": "2026-01-05"}
    assert parse_message({**base, "userId": 123.0}, "f:1").user_id == "123"
    assert parse_message({**base, "userId": 123}, "f:1").user_id == "123"
    assert parse_message({**base, "anonymousId": 12.5}, "f:1").anonymous_id == "12.5"
    for bad in (float("nan"), float("inf")):
        try:
            parse_message({**base, "userId": bad}, "f:1")
        except MessageError as exc:
            assert exc.field == "userId" and "finite number" in exc.reason
        else:
            raise AssertionError(f"{bad!r} was accepted as a userId")


def test_alias_previous_id_reasons() -> None:
    alias = {"type": "alias", "messageId": "m1", "userId": "u1", "timestamp": "2026-01-05"}
    for ok in ("a1", 7, 7.0, 10**30):
        assert parse_message({**alias, "previousId": ok}, "f:1").user_id == "u1"
    cases = {None: "needs a previousId", "  ": "needs a previousId", True: "got True"}
    cases.update({float("nan"): "got nan"})
    for value, reason in cases.items():
        try:
            parse_message({**alias, "previousId": value}, "f:1")
        except MessageError as exc:
            assert exc.field == "previousId" and reason in exc.reason, (value, exc.reason)
        else:
            raise AssertionError(f"previousId {value!r} was accepted")


def test_a_message_id_with_a_nul_is_a_reject() -> None:
    # It could be stored in no PostgreSQL text column (the sent-ledger's key).
    raw = {"type": "track", "messageId": "m\x001", "userId": "u", "event": "E"}
    try:
        parse_message(raw, "f:1")
    except MessageError as exc:
        assert exc.field == "messageId" and "NUL" in exc.reason
    else:
        raise AssertionError("a messageId with a NUL was accepted")


def test_a_blank_message_id_is_a_reject_naming_the_field() -> None:
    # A blank id is no id: as a dedup key, each blank one would pass for a copy of the last.
    base = {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-01-05"}
    for blank in (" ", "   ", "\t\n", "\u00a0", "\u3000", "\u200b", "\ufeff \u200d"):
        try:
            parse_message({**base, "messageId": blank}, "f:1")
        except MessageError as exc:
            assert (exc.field, exc.reason) == ("messageId", BLANK_MESSAGE_ID), blank
        else:
            raise AssertionError(f"messageId {blank!r} was accepted")
    assert parse_message({**base, "messageId": " m1 "}, "f:1").message_id == " m1 "
    for missing in (None, ""):
        try:
            parse_message({**base, "messageId": missing}, "f:1")
        except MessageError as exc:
            assert (exc.field, exc.reason) == ("messageId", "missing"), missing
        else:
            raise AssertionError(f"messageId {missing!r} was accepted")
