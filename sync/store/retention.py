"""Retention of the state store: old acknowledged ledger keys, rejected rows and run records.

Every other table is bounded already (trigger tables by `[trigger_engine].retention`, the
inbox by `[ingest].inbox_retention_hours`); these three grow with every event, reject
and run. Rows are deleted in chunks, each in its own short transaction, so a prune never
holds the write lock long: `serve`'s ingest commits between two chunks (SQLite has one
writer at a time). A time budget lets a long-running process work a large backlog off
over several runs instead of stalling one.

What is never deleted: a `pending` ledger key (an intent whose outcome is not known yet:
Mailchimp's uncertain sends are checked against it before any resend), a run record
still `running` (no `ended_at`), and the latest run record of each sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from sync.store import schema
from sync.store.state import StateStore

CHUNK = 1000
"""Rows deleted per transaction: ~5 ms of write lock on SQLite, ~100-300 ms when a WAL
checkpoint lands on it; 5,000 deletes no faster (`bench/state_growth.py`)."""


class RetentionSettings(Protocol):
    """The `[state]` retention keys (`sync.config.StateSettings`)."""

    @property
    def sent_ledger_retention_days(self) -> int: ...
    @property
    def rejects_retention_days(self) -> int: ...
    @property
    def runs_retention_days(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days each table keeps; 0 keeps it forever (`[state]` settings)."""

    sent_ledger_days: int = 0
    rejects_days: int = 0
    runs_days: int = 0

    @classmethod
    def of(cls, state: RetentionSettings) -> Retention:
        """The retention a `[state]` section configures."""
        return cls(
            state.sent_ledger_retention_days,
            state.rejects_retention_days,
            state.runs_retention_days,
        )


@dataclass(slots=True)
class Pruned:
    """What one prune deleted, per table, and the cutoff it applied (None: kept forever)."""

    counts: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, datetime | None] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: the time budget ran out with rows still due

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (`espbridge prune -o json`)."""
        return {
            "complete": self.complete,
            "tables": {
                name: {
                    "deleted": self.counts.get(name, 0),
                    "retention_days": self.days[name],
                    "before": cutoff.isoformat() if cutoff else None,
                }
                for name, cutoff in self.cutoffs.items()
            },
        }


Condition = Callable[[StateStore, datetime], sa.ColumnElement[bool]]


def _ledger_due(_store: StateStore, cutoff: datetime) -> sa.ColumnElement[bool]:
    t = schema.sent_ledger
    return sa.and_(t.c.acknowledged_at < cutoff, t.c.status == "acknowledged")


def _rejects_due(_store: StateStore, cutoff: datetime) -> sa.ColumnElement[bool]:
    # By age alone, retried or not: the retention is the user's choice, and rows that can
    # never be sent (a bad email) would otherwise pile up for ever.
    return schema.rejected_rows.c.created_at < cutoff


def _runs_due(store: StateStore, cutoff: datetime) -> sa.ColumnElement[bool]:
    t = schema.runs
    # The latest run of each sync stays, however old: `schedule` reads it to tell a
    # tick missed while it was down (a quarterly sync would otherwise skip a quarter),
    # and `espbridge runs` still shows when each sync last ran.
    with store.engine.connect() as conn:
        latest = list(conn.execute(sa.select(sa.func.max(t.c.id)).group_by(t.c.sync)).scalars())
    return sa.and_(t.c.ended_at < cutoff, t.c.status != "running", t.c.id.not_in(latest))


# Names as in the run report's `pruned.<name>` counts.
_TABLES: tuple[tuple[str, sa.Table, Condition, str], ...] = (
    ("sent_ledger", schema.sent_ledger, _ledger_due, "sent_ledger_days"),
    ("rejects", schema.rejected_rows, _rejects_due, "rejects_days"),
    ("runs", schema.runs, _runs_due, "runs_days"),
)


def prune(
    store: StateStore,
    retention: Retention,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
    budget_s: float | None = None,
) -> Pruned:
    """Delete the rows older than their table's retention, `chunk` rows per transaction.

    Args:
        store: The state store.
        retention: Days kept per table (0: that table is not pruned).
        now: The time retention is counted back from (default: now, UTC).
        chunk: Rows per delete transaction.
        budget_s: Start no further chunk after this many seconds (each table still gets
            one; `complete` is then False); None runs to the end.
    """
    now = now or datetime.now(UTC)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    result = Pruned()
    for name, table, due, setting in _TABLES:
        days = int(getattr(retention, setting))
        result.days[name] = days
        cutoff = now - timedelta(days=days) if days > 0 else None
        result.cutoffs[name] = cutoff
        if cutoff is None:
            continue
        deleted, done = _prune_table(store, table, due(store, cutoff), chunk, deadline)
        result.counts[name] = deleted
        result.complete &= done
    return result


def _prune_table(
    store: StateStore,
    table: sa.Table,
    due: sa.ColumnElement[bool],
    chunk: int,
    deadline: float | None,
) -> tuple[int, bool]:
    """Delete `table`'s rows matching `due` chunk by chunk; (how many, whether all)."""
    keys = list(table.primary_key.columns)
    # The oldest `chunk` due rows, found through the table's time index.
    pick = sa.select(*keys).where(due).limit(chunk)
    target = keys[0].in_(pick) if len(keys) == 1 else sa.tuple_(*keys).in_(pick)
    # `due` again on the rows themselves: a key upserted meanwhile is no longer old.
    statement = sa.delete(table).where(target, due)
    total = 0
    while True:  # at least one chunk per table, whatever the budget
        with store.engine.begin() as conn:
            deleted = int(conn.execute(statement).rowcount)
        total += deleted
        if deleted < chunk:
            return total, True
        if deadline is not None and time.monotonic() >= deadline:
            return total, False
