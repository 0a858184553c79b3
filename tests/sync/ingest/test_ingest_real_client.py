"""The official segment-analytics-python client, pointed at espbridge by its host."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from fastapi import FastAPI
from segment.analytics import Client

from sync.store.state import StateStore
from tests.sync.ingest.helpers import WRITE_KEY, LiveServer, inbox_rows


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def test_sync_mode_client_events_are_stored(server: LiveServer, store: StateStore) -> None:
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY, host=server.url, sync_mode=True, on_error=lambda e, _b: errors.append(e)
    )
    when = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    client.identify("user-1", {"email": "ada@example.com"}, timestamp=when, message_id="id-1")
    client.track("user-1", "Order Completed", {"order_id": "o-1", "total": 42.5}, message_id="t-1")
    client.page("user-1", "Docs", "Install", {"url": "https://x.test/install"}, message_id="p-1")
    client.alias("anon-1", "user-1", message_id="a-1")

    assert errors == []
    rows = {r["message_id"]: orjson.loads(r["raw"]) for r in inbox_rows(store)}
    assert list(rows) == ["id-1", "t-1", "p-1", "a-1"]
    assert rows["id-1"]["traits"] == {"email": "ada@example.com"}
    assert rows["id-1"]["timestamp"].startswith("2026-11-23T10:00:00")
    assert rows["t-1"]["properties"] == {"order_id": "o-1", "total": 42.5}
    assert rows["t-1"]["context"]["library"]["name"] == "analytics-python"
    assert "writeKey" not in rows["t-1"]


def test_batching_client_with_gzip_flushes_into_the_inbox(
    server: LiveServer, store: StateStore
) -> None:
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY,
        host=server.url,
        gzip=True,
        upload_size=50,
        on_error=lambda e, _b: errors.append(e),
    )
    for i in range(120):
        client.track(f"user-{i % 7}", "Product Viewed", {"sku": f"SKU-{i}"}, message_id=f"m-{i}")
    client.flush()
    client.shutdown()

    assert errors == []
    assert sorted(r["message_id"] for r in inbox_rows(store)) == sorted(
        f"m-{i}" for i in range(120)
    )


def test_client_sees_the_reason_of_a_refused_message(server: LiveServer) -> None:
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY, host=server.url, sync_mode=True, on_error=lambda e, _b: errors.append(e)
    )

    with pytest.raises(Exception, match="invalid_messages") as refused:
        client.track("user-1", "  ", message_id="blank-event")

    assert "a track call needs an event name" in str(refused.value)
