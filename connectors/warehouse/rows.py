"""Rebuilding Segment-spec messages from warehouse rows.

A `RowPlan` is computed once per result (from its column names), so turning a row into
a message is one pass over the row's values.

Segment's warehouse schema (`segment_tables` mode): `id` is the messageId; `user_id`,
`anonymous_id`, the four timestamps and `event_text` (the original event name) are
common columns; `context_*` columns are folded back into `context` (`context_page_url`
→ `context.page.url`, `context_user_agent` → `context.userAgent`); every other column is
a property (track, page, screen) or a trait (identify, group), named as in the
warehouse (snake_case). Arrays that Segment stringified (`products`) are parsed back.

Query mode: see `QUERY_COLUMNS` and the README section for the column convention.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from mapping.message import MessageError

_CONTEXT_OBJECTS = (
    "app",
    "campaign",
    "device",
    "library",
    "location",
    "network",
    "os",
    "page",
    "referrer",
    "screen",
    "traits",
    "user_agent_data",
)
_TIMES = {
    "timestamp": "timestamp",
    "original_timestamp": "originalTimestamp",
    "sent_at": "sentAt",
    "received_at": "receivedAt",
}
SEGMENT_SKIPPED = frozenset(("uuid", "uuid_ts", "loaded_at", "event"))
SEGMENT_TOP = {
    "id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "event_text": "event",
    "previous_id": "previousId",
    "group_id": "groupId",
}
QUERY_COLUMNS = {
    "type": "type",
    "event": "event",
    "message_id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "previous_id": "previousId",
    "group_id": "groupId",
    "name": "name",
    "category": "category",
}
"""Query-mode columns copied to a top-level message key (besides the timestamps)."""
BODY_FOR_KIND = {"identify": "traits", "group": "traits"}


def camel(name: str) -> str:
    """snake_case → camelCase (Segment's own context keys are camelCase)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_json_value(value: Any) -> Any:
    """A database value as a JSON value (times as ISO-8601 UTC with `Z`)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return value


_JSON_STARTS = ("[", "{")
_PLAIN = frozenset((int, float, bool))


def _maybe_json(value: str) -> Any:
    """A stringified array or object (Segment stringifies arrays), parsed; else the string."""
    if value[-1:] in ("]", "}"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _context_path(rest: str) -> tuple[str, ...]:
    for obj in _CONTEXT_OBJECTS:
        if rest.startswith(obj + "_"):
            leaf = rest[len(obj) + 1 :]
            return camel(obj), (leaf if obj == "traits" else camel(leaf))
    return (camel(rest),)


class RowPlan:
    """Where each column of a result goes in the message.

    Args:
        columns: Column names of the result, in order.
        kind: The Segment call type (query mode: the default type).
        query_mode: Use the query-mode convention instead of Segment's schema.
        id_column: The row id column (query mode: the default messageId).
        cursor_column: The cursor column (query mode: not copied into the body).
    """

    def __init__(
        self,
        columns: Sequence[str],
        kind: str,
        *,
        query_mode: bool,
        id_column: str = "id",
        cursor_column: str = "received_at",
    ) -> None:
        self.kind = kind
        self.query_mode = query_mode
        self.id_index = list(columns).index(id_column)
        self.id_column = id_column
        self.steps: list[tuple[int, str, tuple[str, ...]]] = []
        bookkeeping = {id_column.lower(), cursor_column.lower()} if query_mode else set()
        for index, column in enumerate(columns):
            step = self._step(column, query_mode)
            if step is not None and step[0] == "body" and column.lower() in bookkeeping:
                continue  # the id and cursor columns are not properties
            if step is not None:
                self.steps.append((index, step[0], step[1]))
        self._compiled: Callable[[Sequence[Any], dict[str, Any], dict[str, Any]], None] | None
        self._compiled = None
        self.has_message_id = any(s[1] == "top" and s[2] == ("messageId",) for s in self.steps)

    @staticmethod
    def _step(column: str, query_mode: bool) -> tuple[str, tuple[str, ...]] | None:
        name = column.lower()
        if name in _TIMES:
            return "time", (_TIMES[name],)
        if query_mode:
            if name in QUERY_COLUMNS:
                return "top", (QUERY_COLUMNS[name],)
            if name in ("properties", "traits", "context"):
                return "json", (name,)
            for section in ("properties", "traits", "context"):
                if name.startswith(section + "_"):
                    return "nested", (section, column[len(section) + 1 :])
            return "body", (column,)
        if name in SEGMENT_SKIPPED:
            return None
        if name in SEGMENT_TOP:
            return "top", (SEGMENT_TOP[name],)
        if name in ("name", "category"):
            return "top", (name,)
        if name.startswith("context_"):
            return "nested", ("context", *_context_path(name[len("context_") :]))
        return "body", (column,)

    def message(self, row: Sequence[Any]) -> dict[str, Any]:
        """Build the raw message of one row; raises `MessageError` for a bad JSON column."""
        msg: dict[str, Any] = {"type": self.kind}
        body: dict[str, Any] = {}
        self._fill(row, msg, body)
        if self.query_mode and not self.has_message_id:
            msg["messageId"] = self._default_message_id(row)
        if isinstance(msg.get("messageId"), int | float):
            msg["messageId"] = str(msg["messageId"])
        if "timestamp" not in msg and "receivedAt" in msg:
            msg["timestamp"] = msg["receivedAt"]
        if body:
            section = BODY_FOR_KIND.get(str(msg.get("type")), "properties")
            msg[section] = {**body, **msg.get(section, {})}
        return msg

    def _default_message_id(self, row: Sequence[Any]) -> str:
        value = row[self.id_index]
        if value is None:
            # str(None) would give every such row the messageId "None": the ESPs and the
            # sent-ledger would keep the first and drop the others as duplicates.
            raise MessageError(self.id_column, "is NULL: the row has no id to be its messageId")
        return str(to_json_value(value))

    @property
    def _fill(self) -> Callable[[Sequence[Any], dict[str, Any], dict[str, Any]], None]:
        if self._compiled is None:
            self._compiled = _compile(self.steps)
        return self._compiled


def _compile(
    steps: list[tuple[int, str, tuple[str, ...]]],
) -> Callable[[Sequence[Any], dict[str, Any], dict[str, Any]], None]:
    """A straight-line function filling a message from a row, one statement per column.

    Generated once per result: a loop dispatching on each column's action costs about
    three times as much per row, and the warehouse read is bound by this function.
    """
    lines = ["def fill(row, msg, body):"]
    for index, action, keys in steps:
        lines += [f"    v = row[{index}]", "    if v is not None:"]
        if action in ("body", "nested"):
            lines.append("        if type(v) is str:")
            lines.append("            if v[:1] in STARTS: v = maybe_json(v)")
            lines.append("        elif type(v) not in PLAIN: v = conv(v)")
        elif action == "time":
            lines.append("        if type(v) is DT and v.tzinfo is None: v = v.isoformat() + 'Z'")
            lines.append("        elif type(v) is not str: v = conv(v)")
        else:
            lines.append("        if type(v) is not str and type(v) not in PLAIN: v = conv(v)")
        if action in ("top", "time"):
            lines.append(f"        msg[{keys[0]!r}] = v")
        elif action == "body":
            lines.append(f"        body[{keys[0]!r}] = v")
        elif action == "nested":
            chain = "msg" + "".join(f".setdefault({key!r}, {{}})" for key in keys[:-1])
            lines.append(f"        {chain}[{keys[-1]!r}] = v")
        else:
            lines.append(f"        msg.setdefault({keys[0]!r}, {{}}).update(obj(v, {keys[0]!r}))")
    lines.append("    return None")
    scope: dict[str, Any] = {
        "conv": to_json_value,
        "maybe_json": _maybe_json,
        "obj": _json_object,
        "STARTS": _JSON_STARTS,
        "PLAIN": _PLAIN,
        "DT": datetime,
    }
    exec(compile("\n".join(lines), "<warehouse row plan>", "exec"), scope)
    fill: Callable[[Sequence[Any], dict[str, Any], dict[str, Any]], None] = scope["fill"]
    return fill


def _json_object(value: Any, column: str) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise MessageError(column, f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MessageError(column, "must be a JSON object")
    return value


def row_payload(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """The row as JSON values, for a rejected row's payload."""
    return {column: to_json_value(value) for column, value in zip(columns, row, strict=True)}
