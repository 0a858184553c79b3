"""The `warehouse` source: Segment's warehouse tables or a declared query, incrementally.

Each stream (a Segment table, or the query) is read in `(cursor, id)` order from the last
cursor value stored, with boundary dedup (see `connectors.warehouse.cursor`). Before any
row is read, `max(cursor)` of every stream is taken: that signpost caps the read, so rows
arriving during it are read next time. Rows are fetched through a server-side cursor
when the driver has one (PostgreSQL), else in keyset pages of `page_size` rows, so
memory stays bounded. Streams are read one after another: identifies, aliases, groups,
pages, screens, then the event tables by name.

DuckDB has its own path (`connectors.warehouse.fast`): pages found a chunk at a time
(`connectors.warehouse.pages`), and Segment tables rendered as message JSON by DuckDB
itself; other tables and queries are read as rows, through DuckDB's own connection.

The bookmark is `{"v": 1, "streams": {<table>: {"last_value", "boundary_ids"}}}` (and
`"boundary_nulls"` when rows with a NULL id were read at `last_value`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import sqlalchemy as sa

from connectors.base import Bookmark, SourceBatch
from connectors.errors import SourceUnavailable
from connectors.segment.gc_pause import gc_paused, gc_resumed
from connectors.warehouse.batches import BOOKMARK_VERSION, Batcher, build
from connectors.warehouse.cursor import CURSOR_TYPES, TableCursor
from connectors.warehouse.fast import FastReader, plan_stream
from connectors.warehouse.json_sql import quote
from connectors.warehouse.pages import Page, executed_pages
from connectors.warehouse.rows import RowPlan
from connectors.warehouse.settings import WarehouseSourceSettings
from connectors.warehouse.streams import Stream, discover, quote_ident

__all__ = ["BOOKMARK_VERSION", "WarehouseSource", "WarehouseSourceError"]


class WarehouseSourceError(SourceUnavailable):
    """The warehouse cannot be reached or does not hold what the config says."""


_QUERY_ERRORS = (sa.exc.SQLAlchemyError, duckdb.Error)
"""What a warehouse raises when a query fails (DuckDB's own connection raises `duckdb.Error`)."""
_DB_ERRORS = (*_QUERY_ERRORS, LookupError)
"""Also `discover`'s: a table named in `tables` is not there."""


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
        self.duckdb = url.get_backend_name() == "duckdb"
        if self.duckdb:
            sa.event.listen(self.engine, "connect", self._configure_duckdb)
        self._display_url = url.render_as_string(hide_password=True)

    def _configure_duckdb(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET enable_progress_bar = false")
        limit = self.settings.duckdb_memory_limit
        if limit:
            cursor.execute(f"SET memory_limit = '{limit.replace(chr(39), '')}'")
        if self.settings.duckdb_threads:
            cursor.execute(f"SET threads = {int(self.settings.duckdb_threads)}")
        cursor.close()

    def check(self) -> str:
        """Connect and describe what is there, or raise `WarehouseSourceError`."""
        try:
            with self.engine.connect() as conn:
                streams = discover(conn, self.settings)
                for stream in streams:
                    self._locate(conn, stream)
                counts = [f"{s.name} {self._count(conn, s)}" for s in streams]
        except _DB_ERRORS as exc:
            raise self._error(exc) from None
        if not streams:
            raise WarehouseSourceError(
                f"warehouse source {self.name!r} at {self._display_url}: no Segment tables found"
            )
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
                for stream in streams:
                    self._locate(conn, stream)
                signposts = {s.name: self._signpost(conn, s) for s in streams}
        except _DB_ERRORS as exc:
            raise self._error(exc) from None
        for stream in streams:
            self._check_cursor_type(stream, signposts[stream.name])
        reader = _StreamReader(self, Batcher(cursors, batch_size))
        for stream in streams:
            if signposts[stream.name] is None:
                continue
            # A query can also fail on a row (a cast, a division by zero) once it is read:
            # the error names the source and the stream, not a driver's traceback.
            try:
                yield from reader.read(stream, signposts[stream.name])
            except _QUERY_ERRORS as exc:
                raise self._error(exc, stream) from None
        yield reader.batcher.flush()

    def _check_cursor_type(self, stream: Stream, signpost: Any) -> None:
        """Refuse a cursor the bookmark cannot store, before anything is read or sent.

        Else the read goes on and the sync fails when it commits the first batch's
        bookmark (not JSON), after sending it: the same batch again at every run.
        """
        if signpost is None or isinstance(signpost, CURSOR_TYPES):
            return
        raise WarehouseSourceError(
            f"warehouse source {self.name!r}: {stream.name}: cursor_column "
            f"{self.settings.cursor_column!r} holds {type(signpost).__name__} values "
            f"(such as {signpost!r}); use a timestamp, date, number or text column"
        )

    def _error(self, exc: Exception, stream: Stream | None = None) -> WarehouseSourceError:
        where = f"{stream.name}: " if stream is not None else ""
        return WarehouseSourceError(
            f"warehouse source {self.name!r} at {self._display_url}: {where}{_reason(exc)}"
        )

    def _locate(self, conn: sa.Connection, stream: Stream) -> None:
        """Find the id and cursor columns, before any query orders by them.

        Else the first query naming them fails with the driver's words (PostgreSQL:
        `column "id" does not exist`, in SQL the user never wrote). On DuckDB, also
        reads `TIMESTAMPTZ` columns as UTC (`_utc_times`).
        """
        # An empty select works on every dialect (DuckDB's inspector cannot list columns).
        result = conn.execute(sa.text(f"SELECT * FROM {stream.from_clause} WHERE 1 = 0"))
        self._columns(stream, list(result.keys()))
        if self.duckdb:
            raw: Any = conn.connection.dbapi_connection
            described = raw.execute(f"SELECT * FROM {stream.from_clause} LIMIT 0").description
            stream.from_clause = _utc_times(stream.from_clause, described)

    def _signpost(self, conn: sa.Connection, stream: Stream) -> Any:
        cursor = quote_ident(conn, stream.cursor_name)
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
            raise WarehouseSourceError(
                f"warehouse source {self.name!r}: {exc.args[0]} (id_column = "
                f"{self.settings.id_column!r}, cursor_column = {self.settings.cursor_column!r})"
            ) from None

    def _sql(self, conn: sa.Connection, stream: Stream, where: str) -> str:
        c = quote_ident(conn, stream.cursor_name)
        i = quote_ident(conn, stream.id_name)
        return f"SELECT * FROM {stream.from_clause} WHERE {c} <= :signpost{where} ORDER BY {c}, {i}"

    def _streamed(self, stream: Stream, last: Any, signpost: Any) -> Iterator[Sequence[Any]]:
        with self.engine.connect() as conn:
            c = quote_ident(conn, stream.cursor_name)
            params: dict[str, Any] = {"signpost": signpost}
            where = ""
            if last is not None:
                where, params["last"] = f" AND {c} >= :last", last
            size = self.settings.rows_per_page(duckdb=False)
            options = conn.execution_options(stream_results=True, max_row_buffer=size)
            result = options.execute(sa.text(self._sql(conn, stream, where)), params)
            self._columns(stream, list(result.keys()))
            for part in result.partitions(size):
                yield from part

    def _keyset(self, stream: Stream, last: Any, signpost: Any) -> Iterator[Sequence[Any]]:
        """Pages of whole cursor values: find the page's upper cursor bound, then read it.

        The bound query touches only the cursor column, and the page query only the rows
        in `(lower, upper]`, so no page re-sorts the whole table (as `LIMIT` pages on
        `(cursor, id)` would). A page holds every row of its last cursor value, so it can
        exceed `page_size` by the rows sharing one value.
        """
        size = self.settings.rows_per_page(duckdb=False)
        params: dict[str, Any] = {"signpost": signpost, "n": size}
        lower = ""
        if last is not None:
            lower, params["lower"] = " AND {c} >= :lower", last
        while True:
            with self.engine.connect() as conn:
                c = quote_ident(conn, stream.cursor_name)
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

    def duckdb_batches(
        self, stream: Stream, cursor: TableCursor, signpost: Any, batcher: Batcher
    ) -> Iterator[SourceBatch]:
        """Read one stream of a DuckDB warehouse: as message JSON when it can, else as rows."""
        with self.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            described = raw.execute(f"SELECT * FROM {stream.from_clause} LIMIT 0").description
            self._columns(stream, [column[0] for column in described])
            fast = None
            if self.settings.mode == "segment_tables":
                fast = plan_stream(stream, [str(column[1]) for column in described])
            if fast is not None:
                size = self.settings.rows_per_page(duckdb=True)
                reader = FastReader(raw, fast, batcher, size)
                yield from reader.read(cursor, signpost)
            else:
                rows = self._duckdb_rows(raw, stream, cursor.last_value, signpost)
                yield from _batches(self, stream, cursor, rows, batcher)

    def _duckdb_rows(
        self, raw: Any, stream: Stream, last: Any, signpost: Any
    ) -> Iterator[Sequence[Any]]:
        """Rows of a DuckDB stream, page by page, as tuples (DuckDB's own, not SQLAlchemy's)."""
        c = quote(stream.columns[stream.cursor_index])
        i = quote(stream.columns[stream.id_index])
        size = self.settings.rows_per_page(duckdb=True)

        def query(page: Page) -> tuple[str, list[Any]]:
            where, params = page.where(c)
            return f"SELECT * FROM {stream.from_clause} WHERE {where} ORDER BY {c}, {i}", params

        bounds = (last, signpost)
        for _page in executed_pages(raw, c, stream.from_clause, bounds, size, query):
            yield from raw.fetchall()


class _StreamReader:
    """Turns the rows of each stream into batches."""

    def __init__(self, source: WarehouseSource, batcher: Batcher) -> None:
        self.source = source
        self.batcher = batcher

    def read(self, stream: Stream, signpost: Any) -> Iterator[SourceBatch]:
        cursor = self.batcher.cursors.setdefault(stream.name, TableCursor())
        with gc_paused():
            if self.source.duckdb:
                yield from self.source.duckdb_batches(stream, cursor, signpost, self.batcher)
            else:
                rows = self.source.rows(stream, cursor.last_value, signpost)
                yield from _batches(self.source, stream, cursor, rows, self.batcher)


def _batches(
    source: WarehouseSource,
    stream: Stream,
    cursor: TableCursor,
    rows: Iterator[Sequence[Any]],
    batcher: Batcher,
) -> Iterator[SourceBatch]:
    """The generic path: each row through its `RowPlan`, boundary dedup by the cursor."""
    plan: RowPlan | None = None
    resume = cursor.resume()
    for row in rows:
        if plan is None:
            plan = RowPlan(
                stream.columns,
                stream.kind,
                query_mode=source.settings.mode == "query",
                id_column=stream.columns[stream.id_index],
                cursor_column=stream.columns[stream.cursor_index],
            )
        value, found = row[stream.cursor_index], row[stream.id_index]
        row_id = None if found is None else str(found)
        if resume.seen(value, row_id):
            continue
        batcher.add(build(f"{stream.name}:{row_id}", stream.columns, plan, row))
        cursor.advance(value, row_id)
        if batcher.full():
            with gc_resumed():
                yield batcher.flush()


def _utc_times(from_clause: str, described: Sequence[Sequence[Any]]) -> str:
    """A DuckDB stream with its `TIMESTAMPTZ` columns as UTC `TIMESTAMP`s.

    DuckDB's Python client needs `pytz` (not a dependency) to return a `TIMESTAMPTZ`, and
    fails the whole read without it; as UTC timestamps the values keep their order and
    instant, and become the same `…Z` strings in messages.
    """
    zoned = [str(column[0]) for column in described if str(column[1]) == "TIMESTAMP WITH TIME ZONE"]
    if not zoned:
        return from_clause
    replaced = ", ".join(f"timezone('UTC', {quote(name)}) AS {quote(name)}" for name in zoned)
    # No alias: DuckDB needs none, and the fast path puts its own after the clause.
    return f"(SELECT * REPLACE ({replaced}) FROM {from_clause})"


def _reason(exc: Exception) -> str:
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]
