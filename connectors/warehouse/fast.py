"""The DuckDB fast path: Segment tables read as message JSON built by DuckDB.

Each page is one query returning, per row, the message as JSON (`json_sql`, as UTF-8
bytes), the row's `source_ref` and the cursor value; Python only parses the JSON with
orjson and validates it, as the segment source does with its lines. Reading a row this way costs
about a third of fetching its columns as Python objects and building the message.

A row whose JSON orjson rejects, or whose message fails validation, is read again
through the generic path (`RowPlan`), which decides exactly as it would have alone:
its message, or its rejected row with the whole row as payload. Those rows are fetched
together, once per batch, by id, and put back in their place in the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.base import SourceBatch
from connectors.segment.gc_pause import gc_resumed
from connectors.warehouse.batches import Batcher, build
from connectors.warehouse.cursor import Resume, TableCursor
from connectors.warehouse.json_sql import literal, message_sql, quote
from connectors.warehouse.pages import Page, executed_pages
from connectors.warehouse.rows import RowPlan
from connectors.warehouse.streams import Stream
from mapping.message import parse_message
from mapping.types import RejectedRow

FETCH_ROWS = 2048
"""Rows converted to Python at a time (DuckDB holds the sorted page)."""


Row = tuple[bytes, str, Any]
"""A fetched row: message JSON, `source_ref` and cursor value."""

VIEW = "espbridge_messages"
"""The temporary view of the stream being read (one per connection, dropped after)."""


@dataclass(slots=True)
class FastPlan:
    """The queries of one stream (built once its columns are known).

    Attributes:
        stream: The stream.
        cursor: Its quoted cursor column.
        row_id: Its quoted id column.
        view: `CREATE TEMP VIEW` of the messages: `espbridge_json`, `espbridge_ref` (the
            `source_ref`: stream name, `:`, the id as text), `espbridge_cursor` and
            `espbridge_order` (the id, for ordering).
        plan: The generic `RowPlan`, for the rows the fast path leaves to it.
    """

    stream: Stream
    cursor: str
    row_id: str
    view: str
    plan: RowPlan


def plan_stream(stream: Stream, types: list[str]) -> FastPlan | None:
    """The fast-path queries of a located stream, or None when its columns need the generic path."""
    id_name = stream.columns[stream.id_index]
    cursor_name = stream.columns[stream.cursor_index]
    sql = message_sql(list(zip(stream.columns, types, strict=True)), stream.kind, id_name)
    if sql is None:
        return None
    cursor, row_id = quote(cursor_name), quote(id_name)
    # A view: DuckDB parses the (long) message expression once, not per page. The JSON
    # comes as UTF-8 bytes (`encode`): Python copies them, where text would be decoded.
    # DuckDB also writes each row's `source_ref`, which Python would build per row.
    ref = f"{literal(stream.name + ':')} || {_id_text(row_id)}"
    view = (
        f"CREATE OR REPLACE TEMP VIEW {VIEW} AS SELECT encode({sql.json}) AS espbridge_json, "
        f"{ref} AS espbridge_ref, "
        f"{cursor} AS espbridge_cursor, {row_id} AS espbridge_order "
        f"FROM {sql.rows(stream.from_clause)} AS espbridge_rows"
    )
    plan = RowPlan(
        stream.columns, stream.kind, query_mode=False, id_column=id_name, cursor_column=cursor_name
    )
    return FastPlan(stream, cursor, row_id, view, plan)


def _page_query(page: Page) -> tuple[str, list[Any]]:
    """A page of the view, in cursor then id order."""
    where, params = page.where("espbridge_cursor")
    sql = (
        f"SELECT espbridge_json, espbridge_ref, espbridge_cursor FROM {VIEW} WHERE "
        f"{where} ORDER BY espbridge_cursor, espbridge_order"
    )
    return sql, params


def _id_text(row_id: str) -> str:
    """The id as text, as `str()` makes it in Python (NULL: `None`)."""
    return f"COALESCE(CAST({row_id} AS VARCHAR), 'None')"


def _save(cursor: TableCursor, last: Any, ids: set[str] | None, last_id: str) -> set[str]:
    """Store the hot loop's cursor state; returns the ids at `last`, as a set."""
    if ids is None:
        ids = {last_id}
    if last != cursor.last_value:
        cursor.boundary_nulls = 0
    cursor.last_value, cursor.boundary_ids = last, ids
    return ids


@dataclass(slots=True)
class _Pending:
    """A row left to the generic path: where it goes in the batch, and how to find it."""

    position: int
    ref: str
    row_id: str
    value: Any
    error: str


@dataclass
class FastReader:
    """Reads one stream through its `FastPlan` into a `Batcher`."""

    raw: Any
    fast: FastPlan
    batcher: Batcher
    page_size: int
    pending: list[_Pending] = field(default_factory=list)

    def read(self, cursor: TableCursor, signpost: Any) -> Iterator[SourceBatch]:
        """Yield the full batches of rows with cursor in `[cursor.last_value, signpost]`."""
        fast = self.fast
        self.raw.execute(fast.view)
        try:
            bounds = (cursor.last_value, signpost)
            source = fast.stream.from_clause
            resume = cursor.resume()
            for _page in executed_pages(
                self.raw, fast.cursor, source, bounds, self.page_size, _page_query
            ):
                while rows := self.raw.fetchmany(FETCH_ROWS):
                    yield from self._rows(rows, cursor, resume)
            self._resolve()
        finally:
            self.raw.execute(f"DROP VIEW IF EXISTS {VIEW}")

    def _rows(self, rows: list[Row], cursor: TableCursor, resume: Resume) -> Iterator[SourceBatch]:
        """The hot loop: one JSON parse and one validation per row, cursor kept in locals.

        `Resume.seen` and `TableCursor.advance`, inlined. Cursor values are mostly
        distinct, so the ids at the last value become a set only once a second row shares
        it (`ids` is None until then, and `last_ref` names the one row): no set is built
        per row. Only rows sharing a value test `resume` (the ids an earlier read stored):
        an id met twice in this read is passed on, as the generic path does.
        """
        batcher, loads, parse = self.batcher, orjson.loads, parse_message
        skip = len(self.fast.stream.name) + 1  # ref[skip:] is the row id
        last, last_ref = cursor.last_value, ""
        ids: set[str] | None = cursor.boundary_ids
        start, stored = resume.value, resume.ids
        room = batcher.batch_size - len(batcher.messages) - len(batcher.rejects)
        room -= len(self.pending)
        messages = batcher.messages
        for text, ref, value in rows:
            if value == last:
                if ids is None:
                    ids = {last_ref[skip:]}
                if value == start and ref[skip:] in stored:
                    continue
                ids.add(ref[skip:])
            else:
                last, ids, last_ref = value, None, ref
            try:
                messages.append(parse(loads(text), ref))
            except ValueError as exc:  # invalid JSON or message: the generic path decides
                self.pending.append(_Pending(len(messages), ref, ref[skip:], value, str(exc)))
            room -= 1
            if room <= 0:
                ids = _save(cursor, last, ids, last_ref[skip:])
                self._resolve()
                with gc_resumed():
                    yield batcher.flush()
                messages, room = batcher.messages, batcher.batch_size
        _save(cursor, last, ids, last_ref[skip:])

    def _resolve(self) -> None:
        """Read the pending rows through the generic path, into their places in the batch."""
        if not self.pending:
            return
        found = self._fetch()
        columns, offset = self.fast.stream.columns, 0
        for item in self.pending:
            rows = found.get((item.row_id, item.value))
            if not rows:  # deleted since it was read
                reason = f"row removed while it was read ({item.error})"
                self.batcher.rejects.append(RejectedRow(item.ref, None, reason, "source", {}))
                continue
            outcome = build(item.ref, columns, self.fast.plan, rows.pop(0))
            if isinstance(outcome, RejectedRow):
                self.batcher.rejects.append(outcome)
            else:
                self.batcher.messages.insert(item.position + offset, outcome)
                offset += 1
        self.pending = []

    def _fetch(self) -> dict[tuple[str, Any], list[Any]]:
        """The pending rows (all columns), by (id text, cursor value).

        Through a second connection to the database: the page being read keeps the first.
        """
        fast, stream = self.fast, self.fast.stream
        ids = sorted({item.row_id for item in self.pending})
        values = [item.value for item in self.pending]
        text_id = _id_text(fast.row_id)
        sql = (
            f"SELECT {text_id} AS espbridge_id, * FROM {stream.from_clause} "
            f"WHERE {fast.cursor} >= ? AND {fast.cursor} <= ? AND list_contains(?, {text_id}) "
            f"ORDER BY {fast.cursor}, {fast.row_id}"
        )
        found: dict[tuple[str, Any], list[Any]] = {}
        side = self.raw.duplicate()
        try:
            rows = side.execute(sql, [min(values), max(values), ids]).fetchall()
        finally:
            side.close()
        for row in rows:
            found.setdefault((row[0], row[1 + stream.cursor_index]), []).append(row[1:])
        return found
