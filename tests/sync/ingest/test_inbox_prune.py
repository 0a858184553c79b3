"""Inbox retention: old rows go, and pruning a week-long inbox stays cheap.

`serve` keeps a row per message for `inbox_retention_hours` (a week by default) and
prunes every 10 minutes. A prune must not read the whole retention window each time
(on SQLite it would hold the write lock meanwhile, and ingest would answer 503).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sync.ingest.inbox import prune_inbox
from sync.store.inbox import inbox
from sync.store.state import StateStore

NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(hours=168)


def _add(store: StateStore, count: int, received_at: datetime) -> None:
    with store.engine.begin() as conn:
        first = int(conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() or 0)
        row = {"received_at": received_at, "channel": "tracking-api", "raw": "{}"}
        conn.execute(
            sa.insert(inbox), [{**row, "message_id": f"m{first + i}"} for i in range(count)]
        )


def _left(store: StateStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(inbox.c.message_id).order_by(inbox.c.id)).scalars())


def test_old_rows_read_by_every_sync_go_in_chunks_young_and_unread_stay(
    store: StateStore,
) -> None:
    _add(store, 25, CUTOFF - timedelta(hours=1))  # m0..m24: old
    _add(store, 5, NOW)  # m25..m29: young

    assert prune_inbox(store, upto_id=20, received_before=CUTOFF, chunk=4) == 20
    assert _left(store)[:6] == ["m20", "m21", "m22", "m23", "m24", "m25"]
    assert prune_inbox(store, upto_id=30, received_before=CUTOFF, chunk=4) == 5
    assert _left(store) == [f"m{i}" for i in range(25, 30)]
    assert prune_inbox(store, upto_id=30, received_before=CUTOFF, chunk=4) == 0


class _Steps:
    """Counts SQLite VM steps on every connection the store opens from now on."""

    def __init__(self, store: StateStore) -> None:
        self.count = 0
        store.engine.dispose()
        sa.event.listen(store.engine, "connect", self._attach)

    def _attach(self, dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        self.count += 1
        return 0

    def prune(self, store: StateStore) -> int:
        upto = len(_left(store))
        before = self.count
        assert prune_inbox(store, upto_id=upto, received_before=CUTOFF) == 0
        return self.count - before


def test_a_prune_reads_no_more_of_a_full_inbox_than_of_a_small_one(store: StateStore) -> None:
    steps = _Steps(store)
    _add(store, 6_000, NOW)  # an hour of modest traffic, all within retention
    small = steps.prune(store)
    _add(store, 60_000, NOW)  # days later: the whole retention window
    full = steps.prune(store)
    # Was: DELETE … WHERE id <= upto AND received_at < cutoff, which visits every row
    # of the window (11x the steps here; a week at 200 events/s is 120M rows).
    assert full < 1.5 * small, (small, full)
