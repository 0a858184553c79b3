"""The warehouse source on real DuckDB and real PostgreSQL (the `postgres_url` fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.base import Bookmark, Source
from connectors.warehouse.settings import WarehouseSourceSettings
from connectors.warehouse.source import WarehouseSource, WarehouseSourceError
from mapping.types import Message, RejectedRow

T0 = datetime(2026, 1, 5, 12, 0, 0)


@dataclass
class Warehouse:
    """A database for one test: its URL, schema (PostgreSQL) and engine."""

    url: str
    schema: str | None
    engine: sa.Engine

    def source(self, **options: Any) -> WarehouseSource:
        settings = WarehouseSourceSettings(url=self.url, schema_name=self.schema, **options)
        return WarehouseSource(settings, name="wh")

    def table(self, name: str, *extra: sa.Column[Any]) -> sa.Table:
        table = sa.Table(
            name,
            sa.MetaData(schema=self.schema),
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("received_at", sa.DateTime),
            sa.Column("timestamp", sa.DateTime),
            sa.Column("user_id", sa.String),
            sa.Column("anonymous_id", sa.String),
            sa.Column("context_page_url", sa.String),
            sa.Column("context_user_agent", sa.String),
            *extra,
        )
        table.create(self.engine)
        return table

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert(), rows)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path}/wh.duckdb"
        engine = sa.create_engine(url)
        yield Warehouse(url, None, engine)
    else:
        url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url)
        schema = f"t_{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        yield Warehouse(url, schema, engine)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def event_table(wh: Warehouse) -> sa.Table:
    return wh.table(
        "order_completed",
        sa.Column("event", sa.String),
        sa.Column("event_text", sa.String),
        sa.Column("order_id", sa.String),
        sa.Column("revenue", sa.Float),
        sa.Column("products", sa.Text),
    )


def order(n: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"o{n:04d}",
        "received_at": at,
        "timestamp": at - timedelta(seconds=2),
        "user_id": f"u{n}",
        "anonymous_id": None,
        "context_page_url": "https://shop.example.com/checkout",
        "context_user_agent": "Mozilla/5.0",
        "event": "order_completed",
        "event_text": "Order Completed",
        "order_id": f"order-{n}",
        "revenue": 10.0 + n,
        "products": '[{"sku": "SKU-1", "quantity": 1}]',
        **extra,
    }


@dataclass
class Read:
    messages: list[Message]
    rejects: list[RejectedRow]
    bookmark: Bookmark | None
    read: int


def read_all(src: WarehouseSource, bookmark: Bookmark | None, batch_size: int = 100) -> Read:
    out = Read([], [], bookmark, 0)
    for batch in src.read(bookmark, batch_size=batch_size):
        assert len(batch.messages) + len(batch.rejects) <= batch_size
        out.messages += batch.messages
        out.rejects += batch.rejects
        out.bookmark = batch.bookmark
        out.read += batch.read
    return out


def test_rebuilds_segment_messages(warehouse: Warehouse) -> None:
    orders = event_table(warehouse)
    identifies = warehouse.table("identifies", sa.Column("email", sa.String))
    warehouse.table("tracks", sa.Column("event", sa.String), sa.Column("event_text", sa.String))
    warehouse.table("users", sa.Column("email", sa.String))  # a snapshot, not calls
    warehouse.insert(orders, [order(1, T0)])
    warehouse.insert(
        identifies,
        [
            {
                "id": "i1",
                "received_at": T0,
                "timestamp": T0,
                "user_id": "u1",
                "email": "a@example.com",
            }
        ],
    )
    src = warehouse.source()
    assert isinstance(src, Source)
    assert "identifies 1" in src.check() and "order_completed 1" in src.check()
    result = read_all(src, None)
    assert [m.type for m in result.messages] == ["identify", "track"]
    ident, placed = result.messages
    assert ident.traits == {"email": "a@example.com"} and ident.source_ref == "identifies:i1"
    assert placed.event == "Order Completed" and placed.message_id == "o0001"
    assert placed.properties["products"] == [{"sku": "SKU-1", "quantity": 1}]
    assert placed.properties["revenue"] == 11.0 and placed.properties["order_id"] == "order-1"
    assert placed.raw["context"] == {
        "page": {"url": "https://shop.example.com/checkout"},
        "userAgent": "Mozilla/5.0",
    }
    assert placed.timestamp.isoformat() == "2026-01-05T11:59:58+00:00"
    assert placed.source_ref == "order_completed:o0001"
    assert result.read == 2


def test_incremental_with_boundary_dedup(warehouse: Warehouse) -> None:
    orders = event_table(warehouse)
    # 30 rows, in groups of 3 sharing one received_at: batches end inside groups.
    warehouse.insert(orders, [order(n, T0 + timedelta(seconds=n // 3)) for n in range(30)])
    src = warehouse.source()
    seen: list[str] = []
    bookmark = None
    for _ in range(40):  # one batch per run, as a crash after each batch would do
        batch = next(iter(src.read(bookmark, batch_size=4)))
        seen += [m.message_id for m in batch.messages]
        if not batch.messages:
            break
        bookmark = batch.bookmark
    assert seen == [f"o{n:04d}" for n in range(30)]
    assert bookmark is not None
    last = bookmark["streams"]["order_completed"]
    assert last["boundary_ids"] == ["o0027", "o0028", "o0029"]

    # New rows at the boundary value are read; the old ones at that value are not.
    warehouse.insert(
        orders, [order(100, T0 + timedelta(seconds=9)), order(101, T0 + timedelta(seconds=10))]
    )
    again = read_all(src, bookmark)
    assert [m.message_id for m in again.messages] == ["o0100", "o0101"]
    assert read_all(src, again.bookmark).messages == []


def test_rows_arriving_during_a_read_wait_for_the_next(warehouse: Warehouse) -> None:
    orders = event_table(warehouse)
    warehouse.insert(orders, [order(n, T0 + timedelta(seconds=n)) for n in range(250)])
    src = warehouse.source(page_size=100)
    batches = src.read(None, batch_size=50)
    first = next(batches)
    warehouse.insert(orders, [order(n, T0 + timedelta(seconds=n)) for n in range(250, 260)])
    rest = list(batches)
    ids = [m.message_id for b in [first, *rest] for m in b.messages]
    assert ids == [f"o{n:04d}" for n in range(250)]
    after = read_all(src, rest[-1].bookmark)
    assert [m.message_id for m in after.messages] == [f"o{n:04d}" for n in range(250, 260)]


def test_bad_rows_are_rejected_with_table_and_id(warehouse: Warehouse) -> None:
    orders = event_table(warehouse)
    warehouse.insert(
        orders,
        [
            order(1, T0),
            order(2, T0 + timedelta(seconds=1), user_id=None),
            order(3, T0 + timedelta(seconds=2), event_text=None, event=None),
        ],
    )
    result = read_all(warehouse.source(), None)
    assert [m.message_id for m in result.messages] == ["o0001"]
    assert [(r.source_ref, r.field) for r in result.rejects] == [
        ("order_completed:o0002", "userId"),
        ("order_completed:o0003", "event"),
    ]
    assert result.rejects[0].payload["row"]["id"] == "o0002"
    assert result.read == len(result.messages) + len(result.rejects) == 3


def test_query_mode_column_convention(warehouse: Warehouse) -> None:
    table = sa.Table(
        "shop_orders",
        sa.MetaData(schema=warehouse.schema),
        sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("customer", sa.String),
        sa.Column("total", sa.Float),
        sa.Column("extra", sa.Text),
    )
    table.create(warehouse.engine)
    warehouse.insert(
        table,
        [
            {
                "order_no": 1,
                "updated_at": T0,
                "customer": "c1",
                "total": 12.5,
                "extra": '{"coupon": "X"}',
            },
            {"order_no": 2, "updated_at": T0, "customer": "c2", "total": 3.0, "extra": "{broken"},
        ],
    )
    name = f"{warehouse.schema}.shop_orders" if warehouse.schema else "shop_orders"
    query = (
        "SELECT order_no, updated_at, updated_at AS timestamp, 'Order Completed' AS event, "
        f"customer AS user_id, total AS properties_revenue, extra AS properties FROM {name}"
    )
    src = warehouse.source(
        mode="query", query=query, id_column="order_no", cursor_column="updated_at"
    )
    result = read_all(src, None)
    (message,) = result.messages
    assert message.type == "track" and message.event == "Order Completed"
    assert message.message_id == "1" and message.user_id == "c1"
    assert message.properties == {"revenue": 12.5, "coupon": "X"}
    (reject,) = result.rejects
    assert reject.source_ref == "query:2" and reject.field == "properties"
    assert read_all(src, result.bookmark).messages == []


def test_check_errors_name_the_reason_without_the_password(tmp_path: Path) -> None:
    settings = WarehouseSourceSettings(
        url="postgresql+psycopg://app@127.0.0.1:1/none", password="s3cret-pw"
    )
    with pytest.raises(WarehouseSourceError) as raised:
        WarehouseSource(settings).check()
    assert "s3cret-pw" not in str(raised.value) and "127.0.0.1" in str(raised.value)
    empty = WarehouseSource(WarehouseSourceSettings(url=f"duckdb:///{tmp_path}/empty.duckdb"))
    with pytest.raises(WarehouseSourceError, match="no Segment tables"):
        empty.check()
    with pytest.raises(WarehouseSourceError, match="not found"):
        WarehouseSource(
            WarehouseSourceSettings(url=f"duckdb:///{tmp_path}/e.duckdb", tables=["pages"])
        ).check()


def test_reads_the_sample_warehouse(tmp_path: Path) -> None:
    from connectors.sample import generate

    url = f"duckdb:///{tmp_path}/sample.duckdb"
    manifest = generate(tmp_path / "out", events=1000, seed=8, warehouse_url=url)
    src = WarehouseSource(WarehouseSourceSettings(url=url))
    result = read_all(src, None, batch_size=300)
    calls = sum(n for table, n in manifest["warehouse_tables"].items() if table != "tracks")
    assert len(result.messages) == calls and result.rejects == []
    orders = [m for m in result.messages if m.event == "Order Completed"]
    assert orders and all(isinstance(m.properties["products"], list) for m in orders)
    identifies = [m for m in result.messages if m.type == "identify"]
    assert any(m.traits.get("email") for m in identifies)
    tracks_only = WarehouseSource(WarehouseSourceSettings(url=url, track_tables="tracks"))
    from_tracks = read_all(tracks_only, None, batch_size=1000)
    assert (
        sum(m.type == "track" for m in from_tracks.messages)
        == manifest["warehouse_tables"]["tracks"]
    )


def test_timestamptz_cursor_on_postgres(postgres_url: str) -> None:
    from datetime import UTC

    engine = sa.create_engine(postgres_url)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    pages = sa.Table(
        "pages",
        sa.MetaData(schema=schema),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True)),
        sa.Column("timestamp", sa.DateTime(timezone=True)),
        sa.Column("anonymous_id", sa.String),
        sa.Column("name", sa.String),
        sa.Column("path", sa.String),
    )
    pages.create(engine)
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    rows = [
        {
            "id": f"p{n}",
            "received_at": at,
            "timestamp": at,
            "anonymous_id": "a1",
            "name": "Home",
            "path": "/",
        }
        for n in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(pages.insert(), rows)
    src = WarehouseSource(WarehouseSourceSettings(url=postgres_url, schema_name=schema))
    first = read_all(src, None, batch_size=2)
    assert [m.message_id for m in first.messages] == ["p0", "p1", "p2"]
    assert first.messages[0].name == "Home" and first.messages[0].properties == {"path": "/"}
    assert first.messages[0].timestamp == at
    with engine.begin() as conn:
        conn.execute(pages.insert(), [{**rows[0], "id": "p3"}])
    assert [m.message_id for m in read_all(src, first.bookmark).messages] == ["p3"]
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
