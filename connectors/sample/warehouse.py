"""Loading sample messages into DuckDB in Segment's warehouse schema.

Rows are flattened as Segment's warehouse loader does (nested objects joined with `_`,
camelCase → snake_case, arrays stringified), staged as one NDJSON file per table, then
bulk-loaded with DuckDB's `read_json` (one `CREATE TABLE … AS SELECT`).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import orjson

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SLUG = re.compile(r"[^a-z0-9]+")
_TIMESTAMPS: tuple[tuple[str, str], ...] = (
    ("timestamp", "timestamp"),
    ("originalTimestamp", "original_timestamp"),
    ("sentAt", "sent_at"),
    ("receivedAt", "received_at"),
)
_TABLES = {"identify": "identifies", "page": "pages", "screen": "screens"}
_TABLES |= {"alias": "aliases", "group": "groups"}
_snake_cache: dict[str, str] = {}


def snake(name: str) -> str:
    """camelCase → snake_case, as Segment's loader names columns."""
    found = _snake_cache.get(name)
    if found is None:
        found = _snake_cache[name] = _CAMEL.sub(r"_\1", name).lower().replace(" ", "_")
    return found


def slug(event: str) -> str:
    """The table name of a track event: `Order Completed` → `order_completed`."""
    return _SLUG.sub("_", snake(event).lower()).strip("_")


def _warehouse_time(value: str) -> str:
    # DuckDB reads "YYYY-MM-DD HH:MM:SS.fff" as a (UTC) TIMESTAMP.
    return value[:23].replace("T", " ")


def flatten(prefix: str, value: dict[str, Any], row: dict[str, Any]) -> None:
    """Flatten nested objects into `prefix_key` columns; lists become JSON strings."""
    for key, item in value.items():
        column = f"{prefix}{snake(key)}"
        if isinstance(item, dict):
            flatten(column + "_", item, row)
        elif isinstance(item, list):
            row[column] = orjson.dumps(item).decode()
        else:
            row[column] = item


def rows_of(msg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The warehouse rows of one message: `(table, row)` pairs."""
    row: dict[str, Any] = {"id": msg["messageId"]}
    for key, column in _TIMESTAMPS:
        row[column] = _warehouse_time(msg[key])
    row["user_id"] = msg.get("userId") or None
    row["anonymous_id"] = msg.get("anonymousId")
    flatten("context_", msg.get("context", {}), row)
    kind = msg["type"]
    if kind == "track":
        row["event"] = slug(msg["event"])
        row["event_text"] = msg["event"]
        event_row = dict(row)
        flatten("", msg.get("properties", {}), event_row)
        return [("tracks", row), (row["event"], event_row)]
    if kind in ("page", "screen"):
        row["name"] = msg.get("name")
        flatten("", msg.get("properties", {}), row)
    elif kind == "alias":
        row["previous_id"] = msg.get("previousId")
    elif kind in ("identify", "group"):
        if kind == "group":
            row["group_id"] = msg.get("groupId")
        flatten("", msg.get("traits", {}), row)
    return [(_TABLES[kind], row)]


class WarehouseStage:
    """Collects rows per table in NDJSON files, then loads them into DuckDB."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="espbridge-sample-")
        self._files: dict[str, BinaryIO] = {}

    def add(self, msg: dict[str, Any]) -> None:
        """Stage the rows of one valid message."""
        for table, row in rows_of(msg):
            handle = self._files.get(table)
            if handle is None:
                handle = self._files[table] = (Path(self._dir.name) / f"{table}.jsonl").open("wb")
            handle.write(orjson.dumps(row) + b"\n")

    def load(self, url: str) -> dict[str, int]:
        """Create the tables (replacing old ones) in the DuckDB database; return row counts."""
        import duckdb

        for handle in self._files.values():
            handle.close()
        path = url.removeprefix("duckdb:///")
        counts: dict[str, int] = {}
        with duckdb.connect(path) as con:
            for table in sorted(self._files):
                staged = str(Path(self._dir.name) / f"{table}.jsonl")
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
                con.execute(
                    f'CREATE TABLE "{table}" AS SELECT * FROM read_json(?, '
                    "format='newline_delimited', sample_size=-1, maximum_object_size=16777216)",
                    [staged],
                )
                found = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                counts[table] = int(found[0]) if found else 0
        self._dir.cleanup()
        return counts

    def discard(self) -> None:
        """Drop the staging files without loading."""
        for handle in self._files.values():
            handle.close()
        self._dir.cleanup()
