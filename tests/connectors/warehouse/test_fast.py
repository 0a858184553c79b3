"""The DuckDB fast path yields exactly what the generic path yields on the same tables."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import connectors.warehouse.fast as fast_module
import connectors.warehouse.source as source_module
from connectors.base import Bookmark
from connectors.warehouse import pages as pages_module
from connectors.warehouse.fast import plan_stream
from connectors.warehouse.json_sql import message_sql
from connectors.warehouse.settings import WarehouseSourceSettings
from connectors.warehouse.source import WarehouseSource
from connectors.warehouse.streams import Stream
from mapping.types import Message, RejectedRow

T0 = datetime(2026, 1, 5, 12, 0, 0)


@dataclass
class Outcome:
    """Everything a read yields, comparable: `repr` keeps key order, float bits and types."""

    batches: list[tuple[list[str], list[str], Bookmark | None, int]]
    messages: list[Message] = field(default_factory=list, compare=False)
    rejects: list[RejectedRow] = field(default_factory=list, compare=False)
    fast_streams: set[str] = field(default_factory=set, compare=False)

    @classmethod
    def of(cls, src: WarehouseSource, bookmark: Bookmark | None, batch_size: int) -> Outcome:
        out = cls([])
        for batch in src.read(bookmark, batch_size=batch_size):
            out.messages += batch.messages
            out.rejects += batch.rejects
            messages = [repr(m) for m in batch.messages]
            rejects = [repr(r) for r in batch.rejects]
            out.batches.append((messages, rejects, batch.bookmark, batch.read))
        return out


def both(src: WarehouseSource, bookmark: Bookmark | None = None, batch_size: int = 7) -> Outcome:
    """Read through the fast path and through the generic path; assert they agree."""
    planned: set[str] = set()

    def spy(stream: Stream, types: list[str]) -> Any:
        found = plan_stream(stream, types)
        if found is not None:
            planned.add(stream.name)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source_module, "plan_stream", spy)
        fast = Outcome.of(src, bookmark, batch_size)
        patch.setattr(source_module, "plan_stream", lambda stream, types: None)
        generic = Outcome.of(src, bookmark, batch_size)
    assert fast == generic
    fast.fast_streams = planned
    return fast


class Db:
    """Runs SQL on the warehouse through the source's own engine (one DuckDB instance)."""

    def __init__(self, path: Path) -> None:
        self.url = f"duckdb:///{path}"
        self.src = self.source()

    def source(self, **options: Any) -> WarehouseSource:
        return WarehouseSource(WarehouseSourceSettings(url=self.url, **options), name="wh")

    def execute(self, sql: str, params: Any = None) -> None:
        with self.src.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            raw.execute(sql, params) if params is not None else raw.execute(sql)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.src.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            raw.executemany(sql, rows)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    database = Db(tmp_path / "wh.duckdb")
    yield database
    database.src.engine.dispose()


EDGE_TEXT = [
    '[{"sku": "A", "quantity": 2}]',
    '{"a": [1, 2.5, null, true]}',
    "{broken",
    "[1, 2,]",  # DuckDB's parser accepts it, orjson does not: a string, as in Python
    '{"a": NaN}',
    " [1]",
    "[1] ",
    "[]",
    "{}",
    '{"x": 1} , "y": {"z": 2}',
    'quote " backslash \\ slash / tab \t newline \n bell \x07',
    "ünïcödé ✓ 😀",
    "",
    None,
]


def _event_rows(count: int) -> list[tuple[Any, ...]]:
    rows = []
    for n in range(count):
        at = T0 + timedelta(seconds=n // 4, microseconds=(n % 3) * 250_000)
        text = EDGE_TEXT[n % len(EDGE_TEXT)]
        user = None if n % 11 == 5 else f"u{n % 17}"
        anonymous = None if n % 11 == 5 or n % 2 else f"a-{n}"
        page_url = None if n % 5 == 0 else f"https://shop.example.com/p/{n}"
        rows.append(
            (
                f"o{n:05d}",
                at,
                None
                if n % 9 == 0
                else at - timedelta(seconds=2),  # timestamp defaults to received_at
                user,
                anonymous,
                page_url,
                None if n % 4 == 0 else "Mozilla/5.0",
                "Order Completed" if n % 23 != 7 else None,  # no event: rejected
                text,
                [10.0, float("nan"), float("inf"), -0.0, 1e300, 0.1, None][n % 7],
                n * 1_000_003 if n % 6 else None,
                [None, True, False][n % 3],
                [None, "12.00", "-0.50", "123456789012345.678"][n % 4],
                T0.date() + timedelta(days=n) if n % 3 else None,
                None if n % 8 == 3 else n % 5,
                "/checkout" if n % 3 == 1 else None,
            )
        )
    return rows


def _event_table(con: Db, name: str = "order_completed") -> None:
    # The context columns sit on both sides of `timestamp` and `user_id`: the `context`
    # object takes the place of its first non-NULL column, as setdefault gives it.
    con.execute(
        f"""CREATE TABLE {name} (
            id VARCHAR, received_at TIMESTAMP, timestamp TIMESTAMP, user_id VARCHAR,
            anonymous_id VARCHAR, context_page_url VARCHAR, context_user_agent VARCHAR,
            event_text VARCHAR, products VARCHAR, revenue DOUBLE, big BIGINT, paid BOOLEAN,
            total DECIMAL(18, 3), ship_on DATE, quantity INTEGER, context_page_path VARCHAR,
            event VARCHAR DEFAULT 'order_completed')"""
    )
    con.executemany(
        f"INSERT INTO {name} VALUES ({', '.join('?' * 16)}, 'order_completed')", _event_rows(130)
    )
    con.execute(
        f"ALTER TABLE {name} ADD COLUMN context_library_name VARCHAR DEFAULT 'analytics.js'"
    )
    con.execute(f"UPDATE {name} SET context_library_name = NULL WHERE id LIKE '%3'")


def test_same_messages_rejects_and_bookmarks(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    con = db
    monkeypatch.setattr(fast_module, "FETCH_ROWS", 3)  # cursor state carried across fetches
    _event_table(con)
    con.execute(
        "CREATE TABLE identifies (id VARCHAR, received_at TIMESTAMP, user_id VARCHAR, "
        "anonymous_id VARCHAR, email VARCHAR, first_name VARCHAR, tags VARCHAR, "
        "context_traits_plan VARCHAR, context_ip VARCHAR, score REAL, huge HUGEINT)"
    )
    con.executemany(
        "INSERT INTO identifies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"i{n}",
                T0 + timedelta(seconds=n // 2),
                f"u{n}" if n % 4 else None,
                None if n % 3 else f"a{n}",
                None if n % 5 == 0 else f"p{n}@example.com",
                "Zoë" if n % 2 else None,
                '["vip", "new"]' if n % 3 == 0 else None,
                "pro" if n % 2 else None,
                None,
                0.1 if n % 2 else None,
                2**70 if n % 10 == 1 else n,  # beyond 64 bits: left to the generic path
            )
            for n in range(40)
        ],
    )
    src = db.source(page_size=100)
    outcome = both(src)
    assert outcome.fast_streams == {"order_completed", "identifies"}
    assert len(outcome.messages) > 100 and outcome.rejects  # both kinds happen
    assert {r.field for r in outcome.rejects} == {"event", "userId"}
    assert all(r.payload["row"]["id"] == r.source_ref.split(":")[1] for r in outcome.rejects)
    # and again after each batch, as runs that crash after every batch would
    bookmark: Bookmark | None = None
    for _ in range(200):
        first = Outcome.of(src, bookmark, 7).batches[0]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(source_module, "plan_stream", lambda stream, types: None)
            assert Outcome.of(src, bookmark, 7).batches[0] == first
        if not first[0] and not first[1]:
            break
        bookmark = first[2]


def test_pages_and_boundaries(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    con = db
    monkeypatch.setattr(pages_module, "CHUNK_PAGES", 2)  # several chunks of bounds
    monkeypatch.setattr(fast_module, "FETCH_ROWS", 11)  # and of fetches, inside a cursor value
    con.execute(
        "CREATE TABLE pages (id INTEGER, received_at TIMESTAMP, anonymous_id VARCHAR, "
        "name VARCHAR, path VARCHAR)"
    )
    # 150 rows share one cursor value (more than a page), around rows with their own.
    rows = [(n, T0 + timedelta(seconds=n), f"a{n}", "Home", "/") for n in range(120)]
    rows += [(1000 + n, T0 + timedelta(seconds=60), f"b{n}", None, None) for n in range(150)]
    rows += [(n, T0 + timedelta(seconds=n), f"c{n}", None, "/x") for n in range(120, 360)]
    con.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?)", rows)
    src = db.source(page_size=100)
    outcome = both(src, batch_size=13)
    assert outcome.fast_streams == {"pages"}
    ids = [m.message_id for m in outcome.messages]
    assert len(ids) == len(set(ids)) == len(rows)
    # Rows added at the last cursor value are read next time; the others are not read again.
    last = outcome.batches[-1][2]
    con.execute(
        f"INSERT INTO pages VALUES (5000, '{T0 + timedelta(seconds=359)}', 'z', NULL, NULL)"
    )
    again = both(src, last, batch_size=13)
    assert [m.message_id for m in again.messages] == ["5000"]


def test_integer_and_uuid_ids(db: Db) -> None:
    con = db
    con.execute(
        "CREATE TABLE aliases (id BIGINT, received_at TIMESTAMP, user_id VARCHAR, "
        "previous_id VARCHAR)"
    )
    con.execute(
        "INSERT INTO aliases SELECT i, TIMESTAMP '2026-01-05' + INTERVAL (i) SECOND, "
        "'u' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'a' || i END FROM range(30) t(i)"
    )
    con.execute("INSERT INTO aliases VALUES (NULL, TIMESTAMP '2026-01-05 00:00:05', 'u', 'a')")
    con.execute(
        "CREATE TABLE groups (id UUID, received_at TIMESTAMP, user_id VARCHAR, group_id VARCHAR, "
        "name VARCHAR, employees INTEGER)"
    )
    con.execute(
        "INSERT INTO groups SELECT uuid(), TIMESTAMP '2026-01-05' + INTERVAL (i) SECOND, "
        "'u' || i, 'g' || (i % 4), 'Acme', i FROM range(20) t(i)"
    )
    outcome = both(db.source(page_size=100), batch_size=4)
    assert outcome.fast_streams == {"aliases", "groups"}
    refs = [r.source_ref for r in outcome.rejects]
    assert "aliases:None" in refs and "aliases:3" in refs  # no id; no previous_id


def test_unsupported_columns_use_the_generic_path(db: Db) -> None:
    con = db
    con.execute(
        "CREATE TABLE screens (id VARCHAR, received_at TIMESTAMP, user_id VARCHAR, "
        "name VARCHAR, sizes INTEGER[])"
    )
    con.execute("INSERT INTO screens VALUES ('s1', TIMESTAMP '2026-01-05', 'u1', 'Home', [1, 2])")
    stream = Stream(
        "screens", "screen", "screens", ["id", "received_at", "user_id", "name", "sizes"]
    )
    stream.locate("received_at", "id")
    assert plan_stream(stream, ["VARCHAR", "TIMESTAMP", "VARCHAR", "VARCHAR", "INTEGER[]"]) is None
    outcome = both(db.source())
    assert outcome.fast_streams == set()
    assert outcome.messages[0].properties == {"sizes": [1, 2]}


def test_colliding_paths_are_left_to_the_generic_path() -> None:
    columns = [("id", "VARCHAR"), ("context_page", "VARCHAR"), ("context_page_url", "VARCHAR")]
    assert message_sql(columns, "page", "id") is None
    assert message_sql([("id", "VARCHAR"), ("context_ip", "VARCHAR")], "page", "id") is not None


def test_json_of_every_handled_type_round_trips(db: Db) -> None:
    """Random doubles, decimals and timestamps: DuckDB's text decodes to Python's values."""
    con = db
    con.execute(
        "CREATE TABLE product_viewed AS SELECT 'p' || i AS id, "
        "TIMESTAMP '2026-01-05' + INTERVAL (i * 7919) MICROSECOND AS received_at, "
        "'u' AS user_id, 'Product Viewed' AS event_text, 'product_viewed' AS event, "
        "random() * pow(10, (i % 40) - 20) * (CASE WHEN i % 2 = 0 THEN 1 ELSE -1 END) AS price, "
        "CAST(random() * 1000 AS DECIMAL(9, 4)) AS weight, CAST(random() AS REAL) AS ratio, "
        "TIMESTAMP '0099-01-01' + INTERVAL (i * 86400013) SECOND AS seen_at FROM range(400) t(i)"
    )
    outcome = both(db.source(page_size=100), batch_size=50)
    assert outcome.fast_streams == {"product_viewed"}
    prices = [m.properties["price"] for m in outcome.messages]
    assert len(prices) == 400 and all(isinstance(p, float) and math.isfinite(p) for p in prices)


def test_pages_too_wide_for_memory_are_split(
    db: Db, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_module, "CHUNK_PAGES", 2)
    db.execute(
        "CREATE TABLE pages (id INTEGER, received_at TIMESTAMP, anonymous_id VARCHAR, name VARCHAR)"
    )
    # 4 kB rows (a long property), 12,000 of them: 48 MB, one 30,000-row page by default.
    db.execute(
        "INSERT INTO pages SELECT i, TIMESTAMP '2026-01-05' + INTERVAL (i // 2) SECOND, "
        "'a' || i, repeat(md5(i::VARCHAR), 128) FROM range(12000) t(i)"
    )
    src = db.source(duckdb_memory_limit="16MB")
    with caplog.at_level("WARNING", logger="connectors.warehouse.pages"):
        outcome = both(src, batch_size=5000)
    assert "did not fit in DuckDB's memory_limit" in caplog.text
    ids = [m.message_id for m in outcome.messages]
    assert ids == [str(n) for n in range(12000)]  # each row once, in cursor order
    assert not outcome.rejects
