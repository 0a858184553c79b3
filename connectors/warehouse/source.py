"""The `warehouse` source: Segment's warehouse tables or a declared query, incrementally.

Each stream (a Segment table, or the query) is read in `(cursor, id)` order from the last
cursor value stored, with boundary dedup (see `connectors.warehouse.cursor`). Before any
row is read, `max(cursor)` of every stream is taken: that signpost caps the read, so rows
arriving during it are read next time. Rows are fetched through a server-side cursor
when the driver has one (PostgreSQL), else in keyset pages of `page_size` rows (DuckDB),
so memory stays bounded. Streams are read one after another: identifies, aliases,
groups, pages, screens, then the event tables by name.

The bookmark is `{"v": 1, "streams": {<table>: {"last_value", "boundary_ids"}}}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from connectors.base import Bookmark, SourceBatch
from connectors.segment.gc_pause import gc_paused, gc_resumed
from connectors.warehouse.cursor import TableCursor
from connectors.warehouse.rows import RowPlan, row_payload
from connectors.warehouse.settings import WarehouseSourceSettings
from connectors.warehouse.streams import Stream, discover, quote_ident
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow

__all__ = ["WarehouseSource", "WarehouseSourceError"]

BOOKMARK_VERSION = 1


class WarehouseSourceError(Exception):
    """The warehouse cannot be reached or does not hold what the config says."""


class WarehouseSource:
    """Reads Segment-spec messages from a SQL warehouse.

    Args:
        settings: The `[sources.<name>]` section.
        name: The source's name in the config.
    """

    def __init__(self, settings: WarehouseSourceSettings, name: str = "warehouse") -> None:
        self.name = name
        self.settings = settings
        url = sa.make_url(settings.url)
        if settings.password is not None:
            url = url.set(password=settings.password.get_secret_value())
        self.engine = sa.create_engine(url)
        if url.get_backend_name() == "duckdb":
            sa.event.listen(self.engine, "connect", self._configure_duckdb)
        self._display_url = url.render_as_string(hide_password=True)

    def _configure_duckdb(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET enable_progress_bar = false")
        limit = self.settings.duckdb_memory_limit
        if limit:
            cursor.execute(f"SET memory_limit = '{limit.replace(chr(39), '')}'")
        cursor.close()

    def check(self) -> str:
        """Connect and describe what is there, or raise `WarehouseSourceError`."""
        try:
            with self.engine.connect() as conn:
                streams = discover(conn, self.settings)
                counts = [f"{s.name} {self._count(conn, s)}" for s in streams]
        except (sa.exc.SQLAlchemyError, LookupError) as exc:
            raise WarehouseSourceError(f"{self._display_url}: {_reason(exc)}") from None
        if not streams:
            raise WarehouseSourceError(f"{self._display_url}: no Segment tables found")
        return f"warehouse source {self.name!r} at {self._display_url}: rows " + ", ".join(counts)

    def _count(self, conn: sa.Connection, stream: Stream) -> int:
        found = conn.execute(sa.text(f"SELECT count(*) FROM {stream.from_clause}")).scalar()
        return int(found or 0)

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        """Yield batches of at most `batch_size` rows after `bookmark`, up to the signpost."""
        if bookmark and bookmark.get("v") != BOOKMARK_VERSION:
            raise ValueError(f"warehouse bookmark: unknown version {bookmark.get('v')!r}")
        stored = (bookmark or {}).get("streams", {})
        cursors = {key: TableCursor.load(value) for key, value in stored.items()}
        try:
            with self.engine.connect() as conn:
                streams = discover(conn, self.settings)
                signposts = {s.name: self._signpost(conn, s) for s in streams}
        except (sa.exc.SQLAlchemyError, LookupError) as exc:
            raise WarehouseSourceError(f"{self._display_url}: {_reason(exc)}") from None
        reader = _StreamReader(self, cursors, batch_size)
        for stream in streams:
            if signposts[stream.name] is not None:
                yield from reader.read(stream, signposts[stream.name])
        yield reader.flush()

    def _signpost(self, conn: sa.Connection, stream: Stream) -> Any:
        cursor = quote_ident(conn, self.settings.cursor_column)
        return conn.execute(sa.text(f"SELECT max({cursor}) FROM {stream.from_clause}")).scalar()

    def rows(self, stream: Stream, last: Any, signpost: Any) -> Iterator[Sequence[Any]]:
        """Rows with cursor in `[last, signpost]`, in `(cursor, id)` order, as lists."""
        if self.engine.dialect.supports_server_side_cursors:
            yield from self._streamed(stream, last, signpost)
        else:
            yield from self._keyset(stream, last, signpost)

    def _columns(self, stream: Stream, columns: list[str]) -> None:
        stream.columns = columns
        try:
            stream.locate(self.settings.cursor_column, self.settings.id_column)
        except KeyError as exc:
            raise WarehouseSourceError(str(exc.args[0])) from None

    def _sql(self, conn: sa.Connection, stream: Stream, where: str) -> str:
        c = quote_ident(conn, self.settings.cursor_column)
        i = quote_ident(conn, self.settings.id_column)
        return f"SELECT * FROM {stream.from_clause} WHERE {c} <= :signpost{where} ORDER BY {c}, {i}"

    def _streamed(self, stream: Stream, last: Any, signpost: Any) -> Iterator[Sequence[Any]]:
        with self.engine.connect() as conn:
            c = quote_ident(conn, self.settings.cursor_column)
            params: dict[str, Any] = {"signpost": signpost}
            where = ""
            if last is not None:
                where, params["last"] = f" AND {c} >= :last", last
            size = self.settings.page_size
            options = conn.execution_options(stream_results=True, max_row_buffer=size)
            result = options.execute(sa.text(self._sql(conn, stream, where)), params)
            self._columns(stream, list(result.keys()))
            for part in result.partitions(self.settings.page_size):
                yield from part

    def _keyset(self, stream: Stream, last: Any, signpost: Any) -> Iterator[Sequence[Any]]:
        """Pages of whole cursor values: find the page's upper cursor bound, then read it.

        The bound query touches only the cursor column, and the page query only the rows
        in `(lower, upper]`, so no page re-sorts the whole table (as `LIMIT` pages on
        `(cursor, id)` would). A page holds every row of its last cursor value, so it can
        exceed `page_size` by the rows sharing one value.
        """
        params: dict[str, Any] = {"signpost": signpost, "n": self.settings.page_size}
        lower = ""
        if last is not None:
            lower, params["lower"] = " AND {c} >= :lower", last
        while True:
            with self.engine.connect() as conn:
                c = quote_ident(conn, self.settings.cursor_column)
                where = lower.format(c=c)
                bound = (
                    f"SELECT max({c}) FROM (SELECT {c} FROM {stream.from_clause} "
                    f"WHERE {c} <= :signpost{where} ORDER BY {c} LIMIT :n) AS espbridge_page"
                )
                upper = conn.execute(sa.text(bound), params).scalar()
                if upper is None:
                    return
                page_params = {**params, "signpost": upper}
                result = conn.execute(sa.text(self._sql(conn, stream, where)), page_params)
                self._columns(stream, list(result.keys()))
                page = result.fetchall()
            yield from page
            if upper == signpost:
                return
            lower, params["lower"] = " AND {c} > :lower", upper


class _StreamReader:
    """Turns the rows of each stream into batches and keeps the cursors."""

    def __init__(self, source: WarehouseSource, cursors: dict[str, TableCursor], size: int) -> None:
        self.source = source
        self.cursors = cursors
        self.batch_size = size
        self.messages: list[Message] = []
        self.rejects: list[RejectedRow] = []

    def read(self, stream: Stream, signpost: Any) -> Iterator[SourceBatch]:
        cursor = self.cursors.setdefault(stream.name, TableCursor())
        settings = self.source.settings
        rows = self.source.rows(stream, cursor.last_value, signpost)
        with gc_paused():
            yield from self._batches(stream, cursor, rows, settings)

    def _batches(
        self,
        stream: Stream,
        cursor: TableCursor,
        rows: Iterator[Sequence[Any]],
        settings: WarehouseSourceSettings,
    ) -> Iterator[SourceBatch]:
        plan: RowPlan | None = None
        for row in rows:
            if plan is None:
                plan = RowPlan(
                    stream.columns,
                    stream.kind,
                    query_mode=settings.mode == "query",
                    id_column=stream.columns[stream.id_index],
                    cursor_column=stream.columns[stream.cursor_index],
                )
            value, row_id = row[stream.cursor_index], str(row[stream.id_index])
            if cursor.seen(value, row_id):
                continue
            self._take(stream, plan, row, row_id)
            cursor.advance(value, row_id)
            if len(self.messages) + len(self.rejects) >= self.batch_size:
                with gc_resumed():
                    yield self.flush()

    def _take(self, stream: Stream, plan: RowPlan, row: Sequence[Any], row_id: str) -> None:
        ref = f"{stream.name}:{row_id}"
        try:
            self.messages.append(parse_message(plan.message(row), ref))
        except MessageError as exc:
            payload = {"row": row_payload(stream.columns, row)}
            self.rejects.append(RejectedRow(ref, exc.field, exc.reason, "source", payload))

    def flush(self) -> SourceBatch:
        bookmark = {
            "v": BOOKMARK_VERSION,
            "streams": {key: cursor.dump() for key, cursor in sorted(self.cursors.items())},
        }
        read = len(self.messages) + len(self.rejects)
        batch = SourceBatch(self.messages, self.rejects, bookmark, read)
        self.messages, self.rejects = [], []
        return batch


def _reason(exc: Exception) -> str:
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]
