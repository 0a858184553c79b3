"""`InboxSource` (bookmark and signpost) and the worker that drains the inbox."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sync.ingest.app import create_app
from sync.ingest.inbox import InboxWriter
from sync.ingest.metrics import IngestMetrics
from sync.ingest.settings import InboxSourceSettings, IngestSettings
from sync.ingest.source import InboxSource
from sync.ingest.validate import ValidMessage, check_message
from sync.ingest.worker import InboxSync, InboxWorker
from sync.store.inbox import inbox
from sync.store.state import BatchCommit, StateStore
from tests.sync.ingest.helpers import WRITE_KEY, track

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _store_messages(store: StateStore, ids: list[str], received_at: datetime = NOW) -> None:
    checked = [
        check_message(
            i, track(m), received_at=received_at, sent_at=None, call_type=None, max_bytes=32768
        )
        for i, m in enumerate(ids)
    ]
    valid = [c for c in checked if isinstance(c, ValidMessage)]
    InboxWriter(store).commit(valid, [], channel="tracking-api", received_at=received_at)


def test_source_reads_in_id_order_from_the_bookmark_up_to_the_signpost(store: StateStore) -> None:
    _store_messages(store, [f"m{i}" for i in range(7)])
    source = InboxSource("events", InboxSourceSettings(batch_size=3), store)

    batches = source.read({"inbox_id": 2}, batch_size=100)
    first = next(batches)
    _store_messages(store, ["late"])  # arrives after reading started: next run
    rest = list(batches)

    assert [m.message_id for m in first.messages] == ["m2", "m3", "m4"]
    assert first.bookmark == {"inbox_id": 5}
    assert [m.message_id for b in rest for m in b.messages] == ["m5", "m6"]
    assert rest[-1].bookmark == {"inbox_id": 7}
    assert [
        m.message_id for b in source.read({"inbox_id": 7}, batch_size=10) for m in b.messages
    ] == ["late"]
    assert first.messages[0].source_ref == "inbox:3"
    assert source.check() == "inbox: 8 messages, newest id 8"


def test_source_turns_an_unreadable_row_into_a_reject(store: StateStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(inbox).values(
                message_id="bad", received_at=NOW, channel="tracking-api", raw='{"type": "nope"}'
            )
        )
    batch = next(InboxSource("events", InboxSourceSettings(), store).read(None, batch_size=10))

    assert batch.messages == []
    assert [(r.source_ref, r.field) for r in batch.rejects] == [("inbox:1", "type")]
    assert batch.bookmark == {"inbox_id": 1}


@dataclass
class FakeReport:
    run_id: int = 0
    status: str = "completed"
    counts: Counter[str] = field(default_factory=Counter)
    api_calls: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class FakeEngine:
    """Reads the inbox through `InboxSource`, 'sends' to one destination, commits."""

    def __init__(
        self, store: StateStore, *, fail_first: int = 0, busy_first: int = 0, delay: float = 0.0
    ) -> None:
        self.store = store
        self.busy_first = busy_first
        self.sent: list[tuple[str, float]] = []
        self.runs = 0
        self.fail_first = fail_first
        self.delay = delay
        self.in_flight = threading.Event()

    async def run_sync(
        self,
        name: str,
        *,
        dry_run: bool = False,
        max_batches: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[Any], None] | None = None,
    ) -> FakeReport:
        self.runs += 1
        if self.runs <= self.fail_first:
            raise RuntimeError("ESP unreachable")
        if self.runs <= self.busy_first:
            raise SyncBusy(f"sync {name!r} is already running elsewhere")
        run_id = self.store.start_run(name)
        report = FakeReport(run_id)
        source = InboxSource("inbox", InboxSourceSettings(batch_size=5), self.store)
        for count, batch in enumerate(
            source.read(self.store.get_bookmark(name, "inbox"), batch_size=100), start=1
        ):
            self.in_flight.set()
            await asyncio.sleep(self.delay)
            self.sent += [(m.message_id, time.monotonic()) for m in batch.messages]
            report.counts["read"] += batch.read
            report.counts["esp.acknowledged"] += len(batch.messages)
            self.store.commit_batch(BatchCommit(run_id, name, "inbox", batch.bookmark))
            if on_batch:
                on_batch(report)
            if (max_batches and count >= max_batches) or (stop and stop.is_set()):
                break
        self.store.finish_run(run_id, "completed")
        return report


SYNCS = [InboxSync("realtime", "inbox", ("esp",))]


def _worker(store: StateStore, engine: FakeEngine, metrics: IngestMetrics) -> InboxWorker:
    settings = IngestSettings(tick_seconds=60, max_batches_per_run=2)
    return InboxWorker(engine, store, SYNCS, settings, metrics)


async def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_ingest_wakes_the_worker_and_each_message_is_sent_once(store: StateStore) -> None:
    metrics = IngestMetrics()
    engine = FakeEngine(store)
    worker = _worker(store, engine, metrics)
    app = create_app(
        IngestSettings(write_keys=[WRITE_KEY]), store, metrics=metrics, on_commit=worker.wake
    )
    worker.start()
    try:
        await _wait_for(lambda: engine.runs >= 1)  # the start-up run found nothing
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://i", auth=(WRITE_KEY, "")
        ) as client:
            posted = time.monotonic()
            await client.post("/v1/batch", json={"batch": [track("m1"), track("m2")]})
            await _wait_for(lambda: len(engine.sent) == 2)
            await client.post("/v1/batch", json={"batch": [track(f"n{i}") for i in range(23)]})
            await _wait_for(lambda: len(engine.sent) == 25)
    finally:
        assert worker.stop(timeout=5)

    assert engine.sent[0][1] - posted < 1.0  # woken at once, not at the 60 s tick
    assert Counter(m for m, _ in engine.sent) == Counter({m: 1 for m, _ in engine.sent})
    text = metrics.render()[0].decode()
    assert 'espbridge_inbox_processed_total{sync="realtime"} 25.0' in text
    assert 'espbridge_emitted_total{destination="esp",sync="realtime"} 25.0' in text
    assert (
        'espbridge_ingest_to_commit_seconds_count{destination="esp",sync="realtime"} 25.0' in text
    )
    assert 'espbridge_inbox_lag_messages{sync="realtime"} 0.0' in text


async def test_worker_survives_a_failing_run_and_catches_up(store: StateStore) -> None:
    _store_messages(store, ["m1", "m2"])
    engine = FakeEngine(store, fail_first=1)
    worker = _worker(store, engine, IngestMetrics())
    worker.start()
    try:
        await _wait_for(lambda: len(engine.sent) == 2)
    finally:
        assert worker.stop(timeout=5)

    assert worker.errors == 1
    assert [m for m, _ in engine.sent] == ["m1", "m2"]


async def test_stop_finishes_the_batch_in_flight_and_commits_it(store: StateStore) -> None:
    _store_messages(store, [f"m{i}" for i in range(20)])
    engine = FakeEngine(store, delay=0.3)
    worker = _worker(store, engine, IngestMetrics())
    worker.start()
    await asyncio.to_thread(engine.in_flight.wait, 5)

    assert await asyncio.to_thread(worker.stop, 5)

    # the batch being sent when stop came was finished and its bookmark committed
    assert [m for m, _ in engine.sent] == [f"m{i}" for i in range(5)]
    assert store.get_bookmark("realtime", "inbox") == {"inbox_id": 5}


class SyncBusy(Exception):
    """Stands for `sync.engine.SyncBusy` (matched by name)."""


async def test_a_sync_run_elsewhere_is_waited_for_not_counted_as_an_error(
    store: StateStore,
) -> None:
    _store_messages(store, ["m1"])
    engine = FakeEngine(store, busy_first=3)
    worker = _worker(store, engine, IngestMetrics())
    worker.start()
    try:
        await _wait_for(lambda: len(engine.sent) == 1)
    finally:
        assert worker.stop(timeout=5)

    assert (worker.errors, worker.busy) == (0, 3)


@pytest.mark.parametrize("batch_size", [1, 100])
def test_source_batch_size_caps_the_sync_batch_size(store: StateStore, batch_size: int) -> None:
    _store_messages(store, ["a", "b", "c"])
    source = InboxSource("events", InboxSourceSettings(batch_size=2), store)

    sizes = [len(b.messages) for b in source.read(None, batch_size=batch_size)]

    assert sizes == ([1, 1, 1] if batch_size == 1 else [2, 1])


def test_a_lock_held_by_a_dead_process_of_this_host_is_taken_over(store: StateStore) -> None:
    from sync.store import schema
    from sync.store.locks import release_dead_holder

    host = socket.gethostname()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    holders = {
        "dead": f"{host}:{dead.stdout.strip()}:abc",
        "alive": f"{host}:{os.getpid()}:abc",
        "elsewhere": f"other-host:{dead.stdout.strip()}:abc",
    }
    expires = datetime.now(UTC) + timedelta(minutes=10)
    with store.engine.begin() as conn:
        for sync, holder in holders.items():
            conn.execute(
                sa.insert(schema.locks).values(
                    name=f"sync:{sync}", holder=holder, expires_at=expires
                )
            )

    released = {sync: release_dead_holder(store, sync) for sync in holders}

    assert released == {"dead": True, "alive": False, "elsewhere": False}
    assert store.acquire_lock("sync:dead", "me", timedelta(minutes=1))
    assert not store.acquire_lock("sync:alive", "me", timedelta(minutes=1))


@pytest.mark.parametrize(("retention_hours", "left"), [(1.0, 0), (10_000.0, 3)])
async def test_worker_prunes_only_old_rows_every_sync_has_read(
    store: StateStore, retention_hours: float, left: int
) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    _store_messages(store, ["m1", "m2", "m3"], received_at=two_hours_ago)
    engine = FakeEngine(store)
    settings = IngestSettings(tick_seconds=60, inbox_retention_hours=retention_hours)
    worker = InboxWorker(engine, store, SYNCS, settings, IngestMetrics())
    worker.start()
    try:
        await _wait_for(lambda: len(engine.sent) == 3)
        await _wait_for(lambda: worker.pruned == 3 - left)
    finally:
        assert worker.stop(timeout=5)

    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == left
    _store_messages(store, ["m4"])
    assert InboxWriter(store).max_id() == 4  # ids are not reused after pruning


async def test_idle_ticks_leave_no_run_records(store: StateStore) -> None:
    # Was: a record every tick (5 s by default) for runs that read and sent nothing, so
    # `espbridge runs` showed only empty runs after two quiet minutes.
    metrics = IngestMetrics()
    engine = FakeEngine(store)
    settings = IngestSettings(tick_seconds=0.01, max_batches_per_run=2)
    worker = InboxWorker(engine, store, SYNCS, settings, metrics)
    app = create_app(
        IngestSettings(write_keys=[WRITE_KEY]), store, metrics=metrics, on_commit=worker.wake
    )
    worker.start()
    try:
        await _wait_for(lambda: engine.runs >= 5)  # quiet ticks
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://i", auth=(WRITE_KEY, "")
        ) as client:
            await client.post("/v1/batch", json={"batch": [track("m1"), track("m2")]})
            await _wait_for(lambda: len(engine.sent) == 2)
        runs_then = engine.runs
        await _wait_for(lambda: engine.runs >= runs_then + 5)  # quiet again
    finally:
        assert worker.stop(timeout=5)
    assert len(store.runs(limit=100)) == 1  # the run that sent m1 and m2
