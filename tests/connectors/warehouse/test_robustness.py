"""The warehouse source on unusual input: cursor types, NULL and duplicated ids, bad queries.

Query mode and Segment tables, on DuckDB and PostgreSQL (the `warehouse` fixture).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.warehouse.settings import WarehouseSourceSettings
from connectors.warehouse.source import WarehouseSource, WarehouseSourceError
from tests.connectors.warehouse.test_fast import Db, both
from tests.connectors.warehouse.test_source import Warehouse, read_all
from tests.connectors.warehouse.test_source import warehouse as warehouse  # the fixture

# The cursor values of four rows, in order, as SQL literals, for each cursor type.
CURSORS = {
    "DATE": ["DATE '2026-01-01'", "DATE '2026-01-02'", "DATE '2026-01-03'", "DATE '2026-01-04'"],
    "INTEGER": ["1", "2", "3", "4"],
    "VARCHAR": ["'2026-01-01a'", "'2026-01-01b'", "'2026-01-01c'", "'2026-01-01d'"],
    "TIMESTAMPTZ": [
        "TIMESTAMPTZ '2026-01-01 10:00:00+02'",
        "TIMESTAMPTZ '2026-01-01 09:30:00+00'",
        "TIMESTAMPTZ '2026-01-01 12:00:00+01'",
        "TIMESTAMPTZ '2026-01-02 00:00:00-05'",
    ],
}


def _name(wh: Warehouse, table: str) -> str:
    return f"{wh.schema}.{table}" if wh.schema else table


def _sql(wh: Warehouse, *statements: str) -> None:
    with wh.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def _orders(wh: Warehouse, cursor_type: str = "INTEGER") -> str:
    name = _name(wh, "orders")
    _sql(wh, f"CREATE TABLE {name} (id INTEGER, c {cursor_type}, customer VARCHAR, s VARCHAR)")
    return name


def _insert(wh: Warehouse, name: str, *rows: tuple[str, str, str]) -> None:
    """Rows of (id, cursor, customer) as SQL literals."""
    values = ", ".join(f"({i}, {c}, {u}, 'x')" for i, c, u in rows)
    _sql(wh, f"INSERT INTO {name} (id, c, customer, s) VALUES {values}")


def _query_source(wh: Warehouse, name: str, **options: Any) -> WarehouseSource:
    query = (
        "SELECT id, c, 'Order Completed' AS event, customer AS user_id, "
        f"TIMESTAMP '2026-01-05 12:00:00' AS timestamp FROM {name}"
    )
    settings = {"mode": "query", "query": query, "cursor_column": "c", **options}
    return wh.source(**settings)


@pytest.mark.parametrize("cursor_type", list(CURSORS))
def test_query_cursor_types_read_only_new_rows(warehouse: Warehouse, cursor_type: str) -> None:
    v = CURSORS[cursor_type]
    name = _orders(warehouse, cursor_type)
    # Two rows share the last value, so the bookmark holds both ids at the boundary.
    _insert(warehouse, name, ("1", v[0], "'u1'"), ("2", v[2], "'u2'"), ("3", v[2], "'u3'"))
    src = _query_source(warehouse, name)
    first = read_all(src, None, batch_size=2)
    assert [m.message_id for m in first.messages] == ["1", "2", "3"] and not first.rejects
    assert read_all(src, first.bookmark).read == 0

    # A row added at the boundary value and one after it: only those are read.
    _insert(warehouse, name, ("4", v[2], "'u4'"), ("5", v[3], "'u5'"))
    again = read_all(src, first.bookmark)
    assert [m.message_id for m in again.messages] == ["4", "5"]
    assert read_all(src, again.bookmark).read == 0


def test_timestamptz_segment_table_on_duckdb(tmp_path: Path) -> None:
    # Segment's own columns as TIMESTAMPTZ: the DuckDB client alone cannot return them.
    db = Db(tmp_path / "wh.duckdb")
    db.execute(
        "CREATE TABLE pages (id VARCHAR, received_at TIMESTAMPTZ, timestamp TIMESTAMPTZ, "
        "anonymous_id VARCHAR, name VARCHAR)"
    )
    db.execute(
        "INSERT INTO pages VALUES "
        "('p1', TIMESTAMPTZ '2026-01-05 14:00:00+02', TIMESTAMPTZ '2026-01-05 13:59:00+02', "
        "'a1', 'Home'), ('p2', TIMESTAMPTZ '2026-01-05 12:00:01+00', NULL, 'a1', 'Cart')"
    )
    out = both(db.src)
    assert [m.message_id for m in out.messages] == ["p1", "p2"] and not out.rejects
    assert out.messages[0].timestamp.isoformat() == "2026-01-05T11:59:00+00:00"
    assert out.messages[1].raw["timestamp"] == "2026-01-05T12:00:01Z"
    assert out.fast_streams == {"pages"}
    assert both(db.src, out.batches[-1][2]).messages == []
    db.src.engine.dispose()


def test_query_null_ids_are_rejected_and_read_once(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"), ("NULL", "2", "'u2'"), ("NULL", "2", "'u3'"))
    src = _query_source(warehouse, name)
    first = read_all(src, None)
    # Not two messages with the messageId "None" (the ESPs would keep only the first).
    assert [m.message_id for m in first.messages] == ["1"]
    assert [(r.source_ref, r.field) for r in first.rejects] == [("query:None", "id")] * 2
    assert "NULL" in first.rejects[0].reason
    assert {r.payload["row"]["user_id"] for r in first.rejects} == {"u2", "u3"}
    assert first.read == 3
    assert read_all(src, first.bookmark).read == 0

    # One more NULL id at the boundary value is read; the two read before are not.
    _insert(warehouse, name, ("NULL", "2", "'u4'"), ("4", "2", "'u5'"))
    again = read_all(src, first.bookmark)
    assert [m.message_id for m in again.messages] == ["4"]
    assert [r.payload["row"]["user_id"] for r in again.rejects] == ["u4"]
    assert read_all(src, again.bookmark).read == 0


def test_query_null_id_with_its_own_message_id_is_read(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("NULL", "1", "'u1'"), ("NULL", "1", "'u2'"))
    query = (
        "SELECT id, c, 'E' AS event, customer AS user_id, 'm-' || customer AS message_id, "
        f"TIMESTAMP '2026-01-05 12:00:00' AS timestamp FROM {name}"
    )
    src = warehouse.source(mode="query", query=query, cursor_column="c")
    first = read_all(src, None, batch_size=1)
    assert sorted(m.message_id for m in first.messages) == ["m-u1", "m-u2"]
    assert read_all(src, first.bookmark).read == 0


def test_duplicated_ids_are_passed_through_not_dropped(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"), ("1", "1", "'u1'"), ("2", "2", "'u2'"))
    src = _query_source(warehouse, name)
    first = read_all(src, None)
    # As the README says: duplicates reach the sent-ledger, which drops and counts them.
    assert [m.message_id for m in first.messages] == ["1", "1", "2"] and first.read == 3
    assert read_all(src, first.bookmark).read == 0


def test_duplicated_ids_in_a_segment_table_on_both_duckdb_paths(tmp_path: Path) -> None:
    db = Db(tmp_path / "wh.duckdb")
    db.execute(
        "CREATE TABLE identifies (id VARCHAR, received_at TIMESTAMP, user_id VARCHAR, "
        "email VARCHAR)"
    )
    db.execute(
        "INSERT INTO identifies VALUES ('i1', TIMESTAMP '2026-01-05 12:00:00', 'u1', 'a@x.io'), "
        "('i1', TIMESTAMP '2026-01-05 12:00:00', 'u1', 'a@x.io'), "
        "('i2', TIMESTAMP '2026-01-05 12:00:00', 'u2', 'b@x.io')"
    )
    out = both(db.src, batch_size=2)
    assert [m.message_id for m in out.messages] == ["i1", "i1", "i2"]
    assert out.fast_streams == {"identifies"}
    assert both(db.src, out.batches[-1][2]).messages == []
    db.src.engine.dispose()


def test_bad_values_become_rejects_and_the_read_goes_on(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, *((str(n), str(n), f"'u{n}'") for n in range(1, 6)))
    query = (
        "SELECT id, c, customer AS user_id, "
        "CASE WHEN id = 2 THEN 'nonsense' ELSE 'track' END AS type, "
        "CASE WHEN id = 3 THEN NULL ELSE 'E' END AS event, "
        "CASE WHEN id = 4 THEN 'yesterday' ELSE '2026-01-05T12:00:00Z' END AS timestamp, "
        "CASE WHEN id = 5 THEN '[1, 2]' ELSE '{}' END AS properties "
        f"FROM {name}"
    )
    src = warehouse.source(mode="query", query=query, cursor_column="c")
    result = read_all(src, None, batch_size=2)
    assert [m.message_id for m in result.messages] == ["1"]
    assert [(r.source_ref, r.field) for r in result.rejects] == [
        ("query:2", "type"),
        ("query:3", "event"),
        ("query:4", "timestamp"),
        ("query:5", "properties"),
    ]
    assert all(r.reason for r in result.rejects) and result.read == 5
    assert result.rejects[2].payload["row"]["timestamp"] == "yesterday"


BAD_QUERIES = {
    "syntax": ("SELEC id, c FROM {t}", "syntax error"),
    "unknown column": ("SELECT id, c, nope FROM {t}", "nope"),
    "unknown table": ("SELECT id, c FROM {t}_missing", "orders_missing"),
    "no cursor column": ("SELECT id, customer FROM {t}", "no column 'c'"),
    "no id column": ("SELECT c, customer AS user_id FROM {t}", "no column 'id'"),
    "fails on a row": ("SELECT id, c, CAST(s AS INTEGER) AS n FROM {t}", "query: "),
}


@pytest.mark.parametrize("case", list(BAD_QUERIES))
def test_a_failing_query_is_a_clear_error(warehouse: Warehouse, case: str) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"))
    query, reason = BAD_QUERIES[case]
    src = warehouse.source(mode="query", query=query.format(t=name), cursor_column="c")
    with pytest.raises(WarehouseSourceError) as raised:
        read_all(src, None)
    message = str(raised.value)
    assert "warehouse source 'wh'" in message and reason in message
    assert "\n" not in message and "SELECT" not in message  # the reason, not the SQL we ran
    if case != "fails on a row":  # `check` counts rows, it does not read them
        with pytest.raises(WarehouseSourceError, match="warehouse source 'wh'"):
            src.check()
    src.engine.dispose()


def test_a_query_ending_in_a_comment(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"))
    src = _query_source(warehouse, name)
    query = src.settings.query
    settings = WarehouseSourceSettings(
        url=warehouse.url,
        mode="query",
        query=f"{query} -- orders placed online",
        cursor_column="c",
    )
    result = read_all(WarehouseSource(settings, name="wh"), None)
    assert [m.message_id for m in result.messages] == ["1"]


def test_a_cursor_the_bookmark_cannot_hold_is_refused_before_reading(
    warehouse: Warehouse,
) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"))
    # A TIME cursor: the read would go on, and the sync fail at every commit after sending.
    query = (
        "SELECT id, TIME '10:00:00' AS c, 'E' AS event, customer AS user_id, "
        f"TIMESTAMP '2026-01-05 12:00:00' AS timestamp FROM {name}"
    )
    src = warehouse.source(mode="query", query=query, cursor_column="c")
    with pytest.raises(WarehouseSourceError, match=r"'wh': query: cursor_column 'c' holds time"):
        next(iter(src.read(None, batch_size=10)))


def test_id_and_cursor_columns_match_case_insensitively(warehouse: Warehouse) -> None:
    name = _orders(warehouse)
    _insert(warehouse, name, ("1", "1", "'u1'"), ("2", "2", "'u2'"))
    src = _query_source(warehouse, name, id_column="ID", cursor_column="C")
    first = read_all(src, None, batch_size=1)
    assert [m.message_id for m in first.messages] == ["1", "2"]
    assert read_all(src, first.bookmark).read == 0

    # Segment tables: an event table is found with the columns spelled otherwise, too.
    orders = warehouse.table(
        "order_completed", sa.Column("event", sa.String), sa.Column("event_text", sa.String)
    )
    at = datetime(2026, 1, 5, 12, 0)
    row = {"id": "o1", "received_at": at, "user_id": "u1", "event_text": "Order Completed"}
    warehouse.insert(orders, [row])
    tables = warehouse.source(id_column="ID", cursor_column="RECEIVED_AT")
    assert [m.message_id for m in read_all(tables, None).messages] == ["o1"]
