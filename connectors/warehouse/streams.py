"""Finding what to read: Segment's tables in a schema, or the declared query.

Segment's warehouse schema has one table per call type (`identifies`, `aliases`,
`groups`, `pages`, `screens`, `tracks`) and one table per track event, named after the
event's slug, holding the common columns plus `event`, `event_text` and one column per
property. `users` and `accounts` are upserted snapshots, not calls, and are not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from connectors.warehouse.settings import WarehouseSourceSettings

CALL_TABLES = {
    "identifies": "identify",
    "aliases": "alias",
    "groups": "group",
    "pages": "page",
    "screens": "screen",
}
NOT_CALLS = frozenset(("users", "accounts", "tracks"))
EVENT_COLUMNS = frozenset(("event", "event_text"))


@dataclass(slots=True)
class Stream:
    """One thing read incrementally: a table, or the query.

    Attributes:
        name: The bookmark key and `source_ref` prefix (table name, or `query`).
        kind: The Segment call type of its rows (query mode: the default type).
        from_clause: SQL to select from (quoted table, or the query as a subquery).
        columns: Result columns, known once reading starts.
    """

    name: str
    kind: str
    from_clause: str
    columns: list[str] = field(default_factory=list)
    cursor_index: int = -1
    id_index: int = -1

    def locate(self, cursor_column: str, id_column: str) -> None:
        """Find the cursor and id columns in `columns` (case-insensitively)."""
        lowered = [c.lower() for c in self.columns]
        for attr, column in (("cursor_index", cursor_column), ("id_index", id_column)):
            if column.lower() not in lowered:
                raise KeyError(f"{self.name}: no column {column!r} in {self.columns}")
            setattr(self, attr, lowered.index(column.lower()))

    # The names as the result spells them: `locate` matches case-insensitively, and
    # PostgreSQL's quoted identifiers are case-sensitive (`"UPDATED_AT"` is not updated_at).
    @property
    def cursor_name(self) -> str:
        """The cursor column as named in the result (once located)."""
        return self.columns[self.cursor_index]

    @property
    def id_name(self) -> str:
        """The id column as named in the result (once located)."""
        return self.columns[self.id_index]


def quote_ident(conn: sa.Connection, name: str) -> str:
    """Quote an identifier for the connection's dialect."""
    return str(conn.dialect.identifier_preparer.quote(name))


def _table_clause(conn: sa.Connection, schema: str | None, table: str) -> str:
    quoted = quote_ident(conn, table)
    return f"{quote_ident(conn, schema)}.{quoted}" if schema else quoted


def _columns(conn: sa.Connection, clause: str) -> set[str]:
    # An empty select works on every dialect (DuckDB's inspector cannot list columns).
    result = conn.execute(sa.text(f"SELECT * FROM {clause} WHERE 1 = 0"))
    return {name.lower() for name in result.keys()}  # noqa: SIM118 (a Result, not a dict)


def discover(conn: sa.Connection, settings: WarehouseSourceSettings) -> list[Stream]:
    """The streams to read, in reading order.

    Raises:
        LookupError: a table named in `tables` does not exist.
    """
    if settings.mode == "query":
        query = (settings.query or "").strip().rstrip(";")
        # On lines of its own: a query ending in a `-- comment` would comment out the `)`.
        return [Stream("query", "track", f"(\n{query}\n) AS espbridge_query")]
    schema = settings.schema_name
    inspector = sa.inspect(conn)
    found = sorted(inspector.get_table_names(schema=schema))
    wanted = settings.tables
    if wanted is not None:
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise LookupError(f"tables not found in schema {schema or '(default)'}: {missing}")
    calls: list[Stream] = []
    events: list[Stream] = []
    for table in found:
        if wanted is not None and table not in wanted:
            continue
        clause = _table_clause(conn, schema, table)
        if table in CALL_TABLES:
            calls.append(Stream(table, CALL_TABLES[table], clause))
        elif table == "tracks":
            if settings.track_tables == "tracks":
                events.append(Stream(table, "track", clause))
        elif table not in NOT_CALLS and settings.track_tables == "events":
            columns = _columns(conn, clause)
            needed = {settings.id_column.lower(), settings.cursor_column.lower()}
            if columns >= EVENT_COLUMNS and needed <= columns:
                events.append(Stream(table, "track", clause))
    order = list(CALL_TABLES)
    calls.sort(key=lambda s: order.index(s.name))
    return calls + events
