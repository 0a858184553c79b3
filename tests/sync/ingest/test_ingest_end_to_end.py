"""From a Segment library to the sandbox's Klaviyo, through the inbox and the engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client

from sync.engine import SyncEngine
from sync.ingest.app import create_app
from sync.ingest.serve import build
from sync.ingest.settings import IngestSettings
from sync.store.state import StateStore
from tests.sync.ingest.helpers import (
    WRITE_KEY,
    LiveServer,
    inbox_config,
    sandbox_events,
)

sandbox = pytest.importorskip("esp_sandbox.server")
sandbox_context = pytest.importorskip("esp_sandbox.context")


@pytest.fixture
def esp() -> Iterator[Any]:
    with sandbox.SandboxServer(sandbox_context.SandboxConfig(time_scale=60)) as server:
        yield server


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the sandbox"
        time.sleep(0.05)


def _track(client: Client, i: int) -> None:
    client.track(
        f"user-{i % 5}",
        "Product Viewed",
        {"sku": f"SKU-{i}", "price": 10 + i},
        context={"traits": {"email": f"user-{i % 5}@example.com"}},
        message_id=f"m-{i}",
    )


def test_real_client_events_reach_the_sandbox_once_each(esp: Any, tmp_path: Path) -> None:
    config = inbox_config(f"sqlite:///{tmp_path / 'state.db'}", esp.klaviyo_url)
    store = StateStore.open(config.state.url)
    app, worker = build(config, store, settings=IngestSettings(write_keys=[WRITE_KEY]))
    with LiveServer(app) as server:
        client = Client(WRITE_KEY, host=server.url, sync_mode=True)
        for i in range(20):
            _track(client, i)
        client.track("user-1", "Product Viewed", {"sku": "SKU-0"}, message_id="m-0")  # retried

        _wait_for(lambda: len(sandbox_events(esp.requests())) == 20)
        time.sleep(0.3)  # anything extra would have arrived by now

    assert worker.errors == 0
    sent = sandbox_events(esp.requests())
    assert sent == {f"m-{i}": 1 for i in range(20)}
    store.close()


async def test_scheduled_run_and_serve_share_one_ledger(esp: Any, tmp_path: Path) -> None:
    config = inbox_config(f"sqlite:///{tmp_path / 'state.db'}", esp.klaviyo_url)
    store = StateStore.open(config.state.url)
    settings = IngestSettings(write_keys=[WRITE_KEY])
    # Events accepted while only a scheduled `run` is around: it sends them.
    ingest_only = create_app(settings, store)
    with LiveServer(ingest_only) as server:
        client = Client(WRITE_KEY, host=server.url, sync_mode=True)
        for i in range(10):
            _track(client, i)
    report = await SyncEngine(config, store).run_sync("realtime")
    assert report.counts["klaviyo.acknowledged"] == 10

    # Then `serve` starts on the same state: it sends only what is new.
    app, _worker = build(config, store, settings=settings)
    with LiveServer(app) as server:
        client = Client(WRITE_KEY, host=server.url, sync_mode=True)
        for i in range(10, 15):
            _track(client, i)
        _wait_for(lambda: len(sandbox_events(esp.requests())) == 15)
        time.sleep(0.3)

    assert sandbox_events(esp.requests()) == {f"m-{i}": 1 for i in range(15)}
    store.close()
