"""Loading sample messages into DuckDB in Segment's warehouse schema.

The JSON lines already written for the S3 layout are staged as-is, one file per table
(per call type, and per event for track calls). DuckDB reads each with `read_json` and
flattens it as Segment's warehouse loader does (nested objects joined with `_`,
camelCase → snake_case, arrays stringified) in one `CREATE TABLE … AS SELECT`, so no
per-row work happens in Python. `tracks` is the union of the event tables' common columns.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SLUG = re.compile(r"[^a-z0-9]+")
_TABLES = {"identify": "identifies", "page": "pages", "screen": "screens"}
_TABLES |= {"alias": "aliases", "group": "groups"}
_TOP = {
    "messageId": "id",
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "previousId": "previous_id",
    "groupId": "group_id",
    "name": "name",
    "category": "category",
}
_TIMES = {
    "timestamp": "timestamp",
    "originalTimestamp": "original_timestamp",
    "sentAt": "sent_at",
    "receivedAt": "received_at",
}
_FLATTENED = {"context": "context_", "properties": "", "traits": ""}
COMMON: tuple[str, ...] = ("id", "received_at", "sent_at", "timestamp", "original_timestamp")
COMMON += ("user_id", "anonymous_id", "event", "event_text")
_snake_cache: dict[str, str] = {}


def snake(name: str) -> str:
    """camelCase → snake_case, as Segment's loader names columns."""
    found = _snake_cache.get(name)
    if found is None:
        found = _snake_cache[name] = _CAMEL.sub(r"_\1", name).lower().replace(" ", "_")
    return found


def slug(event: str) -> str:
    """The table name of a track event: `Order Completed` → `order_completed`."""
    return _SLUG.sub("_", snake(event)).strip("_")


def table_of(msg: dict[str, Any]) -> str:
    """The warehouse table a message lands in (besides `tracks`)."""
    kind = msg["type"]
    return slug(msg["event"]) if kind == "track" else _TABLES[kind]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _flatten(expr: str, dtype: Any, column: str, out: dict[str, str]) -> None:
    kind = dtype.id
    if kind == "struct":
        for key, child in dtype.children:
            inner = f"struct_extract({expr}, {_literal(key)})"
            _flatten(inner, child, f"{column}_{snake(key)}" if column else snake(key), out)
    elif kind in ("list", "map", "json", "array"):
        out[column] = f"CAST(to_json({expr}) AS VARCHAR)"
    elif kind == "uuid":
        out[column] = f"CAST({expr} AS VARCHAR)"
    else:
        out[column] = expr


def _select_list(columns: list[str], types: list[Any], event: str | None) -> str:
    out: dict[str, str] = {}
    for name, dtype in zip(columns, types, strict=True):
        quoted = _quote(name)
        if name in _TOP:
            out[_TOP[name]] = f"CAST({quoted} AS VARCHAR)"
        elif name in _TIMES:
            out[_TIMES[name]] = (
                f"CAST(CAST({quoted} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
            )
        elif name in _FLATTENED:
            found: dict[str, str] = {}
            _flatten(quoted, dtype, _FLATTENED[name].rstrip("_"), found)
            for column, expr in found.items():
                out.setdefault(column, expr)  # reserved columns win, as in Segment
    if event is not None:
        out["event"] = _literal(slug(event))
        out["event_text"] = _literal(event)
    return ", ".join(f"{expr} AS {_quote(column)}" for column, expr in out.items())


class WarehouseStage:
    """Collects JSON lines per table in NDJSON files, then loads them into DuckDB."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="espbridge-sample-")
        self._files: dict[str, BinaryIO] = {}
        self._events: dict[str, str] = {}

    def add(self, msg: dict[str, Any], line: bytes) -> None:
        """Stage one valid message (its JSON line, as written to the S3 layout)."""
        table = table_of(msg)
        handle = self._files.get(table)
        if handle is None:
            path = Path(self._dir.name) / f"{table}.jsonl"
            handle = self._files[table] = path.open("wb")
            if msg["type"] == "track":
                self._events[table] = msg["event"]
        handle.write(line + b"\n")

    def load(self, url: str) -> dict[str, int]:
        """Create the tables (replacing old ones) in the DuckDB database; return row counts."""
        import duckdb

        for handle in self._files.values():
            handle.close()
        counts: dict[str, int] = {}
        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            con.execute("SET enable_progress_bar = false")
            for table in sorted(self._files):
                staged = str(Path(self._dir.name) / f"{table}.jsonl")
                raw = con.sql(
                    f"SELECT * FROM read_json({_literal(staged)}, format='newline_delimited', "
                    "sample_size=-1, maximum_object_size=16777216)"
                )
                select = _select_list(raw.columns, raw.types, self._events.get(table))
                con.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
                con.execute(
                    f"CREATE TABLE {_quote(table)} AS SELECT {select} FROM "
                    f"read_json({_literal(staged)}, format='newline_delimited', "
                    "sample_size=-1, maximum_object_size=16777216)"
                )
            events = sorted(self._events)
            con.execute("DROP TABLE IF EXISTS tracks")
            if events:
                union = " UNION ALL BY NAME ".join(
                    f"SELECT {', '.join(map(_quote, COMMON))} FROM {_quote(t)}" for t in events
                )
                con.execute(f"CREATE TABLE tracks AS {union} ORDER BY received_at")
            for table in [*sorted(self._files), *(["tracks"] if events else [])]:
                found = con.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()
                counts[table] = int(found[0]) if found else 0
        self._dir.cleanup()
        return counts
