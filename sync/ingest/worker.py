"""The worker of `serve`: drains the inbox through the sync engine as messages arrive.

It runs on a thread of its own with its own event loop, so the engine's blocking
state-store calls never hold up the ingest API. Each sync whose source is an inbox
is run whenever the inbox is ahead of its bookmark (ingest wakes it at once after a
commit), and at least every `tick_seconds` so delayed triggers that came due go out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from fastapi import FastAPI

from sync.ingest.inbox import prune_inbox
from sync.ingest.metrics import IngestMetrics
from sync.ingest.settings import IngestSettings
from sync.ingest.source import inbox_id
from sync.store.inbox import inbox
from sync.store.state import StateStore, as_utc

log = logging.getLogger("espbridge.ingest")
_MAX_BACKOFF_S = 30.0
_BUSY_RETRY_S = 0.25
_PRUNE_EVERY_S = 600.0


class RunReportLike(Protocol):
    """What the worker reads from a run report."""

    run_id: int
    status: str
    counts: Counter[str]
    api_calls: Counter[str]
    triggers: Counter[str]
    errors: list[str]


def idle(report: RunReportLike) -> bool:
    """A run that read, decided and sent nothing: a tick with no news."""
    return (
        report.status == "completed"
        and not report.errors
        and not any(report.counts.values())
        and not any(report.api_calls.values())
        and not any(report.triggers.values())
    )


class Engine(Protocol):
    """The part of `sync.engine.SyncEngine` the worker uses."""

    async def run_sync(
        self,
        name: str,
        *,
        dry_run: bool = False,
        max_batches: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run one sync from its bookmark."""
        ...


@dataclass(frozen=True, slots=True)
class InboxSync:
    """A sync reading the inbox: its name, source name and destinations."""

    name: str
    source: str
    destinations: Sequence[str]


@dataclass
class _Progress:
    bookmark: int = 0
    acknowledged: Counter[str] = field(default_factory=Counter)


class InboxWorker:
    """Runs inbox syncs continuously until stopped.

    Args:
        engine: The sync engine (`SyncEngine`).
        store: The state store holding the inbox and the bookmarks.
        syncs: The syncs whose source is an inbox.
        settings: Tick, batches per run and shutdown timeout.
        metrics: Where to report emitted records, lag and latency.
    """

    def __init__(
        self,
        engine: Engine,
        store: StateStore,
        syncs: Sequence[InboxSync],
        settings: IngestSettings,
        metrics: IngestMetrics,
    ) -> None:
        self.engine = engine
        self.store = store
        self.syncs = list(syncs)
        self.settings = settings
        self.metrics = metrics
        self.stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._halt = asyncio.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.busy = 0
        self.pruned = 0
        self._pruned_at = 0.0

    # control (any thread) ------------------------------------------------------------

    def wake(self) -> None:
        """New messages are in the inbox: run now (thread-safe)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop is closing: the worker is stopping
                loop.call_soon_threadsafe(event.set)

    def start(self) -> None:
        """Run the worker on a thread of its own."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run()), name="inbox-worker", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Finish the batch in flight, then stop; True when the thread ended in time."""
        self.stopping.set()
        self.wake()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(self._halt.set)
        if self._thread is None:
            return True
        self._thread.join(
            timeout if timeout is not None else self.settings.shutdown_timeout_seconds
        )
        return not self._thread.is_alive()

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """FastAPI lifespan: the worker runs while the API does."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    # the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run inbox syncs until `stopping` is set."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        next_tick = {s.name: 0.0 for s in self.syncs}
        backoff = 0.0
        while not self.stopping.is_set():
            self._wake.clear()
            worked, backoff = await self._pass(next_tick, backoff)
            if backoff:
                await self._sleep(backoff, self._halt)  # new messages do not cut it short
            elif not worked:
                wait = min(
                    next_tick.values(), default=time.monotonic() + self.settings.tick_seconds
                )
                await self._sleep(wait - time.monotonic(), self._wake)

    async def _pass(self, next_tick: dict[str, float], backoff: float) -> tuple[bool, float]:
        """Run every sync that is behind or due; (anything read, backoff to apply)."""
        worked = False
        for sync in self.syncs:
            if self.stopping.is_set():
                break
            if time.monotonic() < next_tick[sync.name] and not self._behind(sync):
                continue
            read, backoff = await self._attempt(sync, backoff)
            worked |= read
            next_tick[sync.name] = time.monotonic() + self.settings.tick_seconds
            self._update_lag(sync)
        self._maybe_prune()
        return worked, backoff

    def _maybe_prune(self) -> None:
        """Delete old inbox rows that every inbox sync has read (every 10 minutes)."""
        hours = self.settings.inbox_retention_hours
        if not hours or not self.syncs or time.monotonic() - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        upto = min(self._bookmark(sync) for sync in self.syncs)
        before = datetime.now(UTC) - timedelta(hours=hours)
        self.pruned += prune_inbox(self.store, upto_id=upto, received_before=before)

    async def _attempt(self, sync: InboxSync, backoff: float) -> tuple[bool, float]:
        try:
            return await self._run_once(sync), 0.0
        except Exception as exc:  # keep serving; the run record has the error
            # `sync.engine.SyncBusy`, by name: the engine imports every connector. The
            # engine already took over a lock whose holder died, so this one is alive.
            if type(exc).__name__ == "SyncBusy":
                self.busy += 1  # another `serve` or a scheduled `run` is sending these
                return False, max(backoff, _BUSY_RETRY_S)
            self.errors += 1
            log.warning("sync %s: %s: %s", sync.name, type(exc).__name__, exc)
            return False, min(max(backoff * 2, 0.5), _MAX_BACKOFF_S)

    async def _sleep(self, seconds: float, event: asyncio.Event) -> None:
        if seconds <= 0 or self.stopping.is_set():
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)

    async def _run_once(self, sync: InboxSync) -> bool:
        """One engine run of a sync; True when it read anything."""
        progress = _Progress(bookmark=self._bookmark(sync))
        report = await self.engine.run_sync(
            sync.name,
            max_batches=self.settings.max_batches_per_run,
            stop=self.stopping,
            on_batch=lambda r: self._observe(sync, r, progress),
        )
        if idle(report):
            # Its record would say nothing: every few seconds of quiet would push the
            # runs that did something out of `espbridge runs`.
            self.store.discard_run(report.run_id)
        return bool(report.counts.get("read", 0))

    # state ------------------------------------------------------------------------------

    def _bookmark(self, sync: InboxSync) -> int:
        return inbox_id(self.store.get_bookmark(sync.name, sync.source))

    def _max_id(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(inbox.c.id))).scalar() or 0)

    def _behind(self, sync: InboxSync) -> bool:
        return self._max_id() > self._bookmark(sync)

    def _observe(self, sync: InboxSync, report: RunReportLike, progress: _Progress) -> None:
        """After each committed batch: emitted records and ingest-to-commit latency."""
        now = datetime.now(UTC)
        reached = self._bookmark(sync)
        sent = []
        for dest in sync.destinations:
            total = report.counts.get(f"{dest}.acknowledged", 0)
            delta = total - progress.acknowledged[dest]
            progress.acknowledged[dest] = total
            if delta > 0:
                self.metrics.emitted.labels(sync.name, dest).inc(delta)
                sent.append(dest)
        if reached > progress.bookmark:
            self.metrics.processed.labels(sync.name).inc(reached - progress.bookmark)
            if sent:
                for received_at in self._received(progress.bookmark, reached):
                    for dest in sent:
                        seconds = (now - received_at).total_seconds()
                        self.metrics.latency.labels(sync.name, dest).observe(seconds)
            progress.bookmark = reached

    def _received(self, after: int, upto: int) -> list[datetime]:
        query = sa.select(inbox.c.received_at).where(inbox.c.id > after, inbox.c.id <= upto)
        with self.store.engine.connect() as conn:
            return [t for (value,) in conn.execute(query) if (t := as_utc(value)) is not None]

    def _update_lag(self, sync: InboxSync) -> None:
        after = self._bookmark(sync)
        query = (
            sa.select(inbox.c.received_at).where(inbox.c.id > after).order_by(inbox.c.id).limit(1)
        )
        with self.store.engine.connect() as conn:
            oldest = as_utc(conn.execute(query).scalar())
        self.metrics.lag_messages.labels(sync.name).set(max(self._max_id() - after, 0))
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.metrics.lag_seconds.labels(sync.name).set(age)
