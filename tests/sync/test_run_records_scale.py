"""Starting a run costs the same on day 1 and on day 90 of an always-on `serve`.

`serve`'s worker opens a run record each time it wakes with news (two a second under
steady traffic), and every run start first closes the sync's records a dead process
left `running` (`StateStore.abandon_runs`). That must not read every record the sync
ever had: measured in SQLite virtual-machine steps, which grow with rows visited.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sync.store import schema
from sync.store.migrations import current_version
from sync.store.state import StateStore


def _history(store: StateStore, sync: str, count: int) -> None:
    """`count` closed run records of `sync`, as months of worker runs leave."""
    now = datetime.now(UTC)
    row = {"sync": sync, "started_at": now, "ended_at": now, "status": "completed"}
    row |= {"dry_run": False, "counts": {"read": 100}, "api_calls": {}, "errors": []}
    with store.engine.begin() as conn:
        conn.execute(sa.insert(schema.runs), [row] * count)


class _Steps:
    """Counts SQLite VM steps on every connection the store opens from now on."""

    def __init__(self, store: StateStore) -> None:
        self.count = 0
        store.engine.dispose()  # connections opened before would not count
        sa.event.listen(store.engine, "connect", self._attach)

    def _attach(self, dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        self.count += 1
        return 0  # 0: go on

    def of(self, call: Any) -> int:
        before = self.count
        call()
        return self.count - before


def test_closing_abandoned_runs_does_not_read_the_whole_history(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    steps = _Steps(store)
    _history(store, "live", 100)
    dead = store.start_run("live")  # a process that died with its run open
    young = steps.of(lambda: store.abandon_runs("live"))
    _history(store, "live", 20_000)  # weeks of `serve` later
    _history(store, "other", 20_000)
    dead_again = store.start_run("live")
    old = steps.of(lambda: store.abandon_runs("live"))
    records = {r["id"]: r["status"] for r in store.runs(sync="live", limit=50_000)}
    assert records[dead] == records[dead_again] == "failed"
    assert "running" not in records.values()
    # Without an index on (sync, status), the second call visits 20,000 more rows: 50x
    # the steps. With it, the same few lookups.
    assert old < young + 200, (young, old)
    store.close()


def test_a_store_of_the_previous_schema_gets_the_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    store = StateStore.open(url)
    with store.engine.begin() as conn:  # back to version 2: no retention or run indexes
        for index in ("ix_runs_sync_status", "ix_runs_ended_at"):
            conn.exec_driver_sql(f"DROP INDEX {index}")
        conn.execute(sa.delete(schema.schema_version).where(schema.schema_version.c.version > 2))
    store.close()
    upgraded = StateStore.open(url)
    with upgraded.engine.connect() as conn:
        assert current_version(conn) >= 3
        names = {i["name"] for i in sa.inspect(conn).get_indexes("runs")}
    assert "ix_runs_sync_status" in names
    upgraded.close()
