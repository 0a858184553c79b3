"""Reads and writes of the trigger tables (SQLite and PostgreSQL, the same code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sync.store.state import as_utc
from sync.store.triggers import (
    trigger_activity,
    trigger_cancels,
    trigger_clock,
    trigger_counts,
    trigger_instances,
)

CHUNK = 500
_TIME_COLUMNS = ("start_time", "due_at", "planned_due", "decided_at", "event_time", "value")


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a dict, with every stored time aware UTC."""
    out = dict(row._mapping)
    for name in _TIME_COLUMNS:
        if isinstance(out.get(name), datetime):
            out[name] = as_utc(out[name])
    return out


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key exists (so replays are idempotent)."""
    if not rows:
        return
    insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), CHUNK * 4):
        conn.execute(insert(table).on_conflict_do_nothing(), list(rows[start : start + CHUNK * 4]))


def chunks(values: Iterable[str]) -> Iterable[list[str]]:
    """Distinct values in chunks small enough for an `IN (...)`."""
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# clock ------------------------------------------------------------------------------


def max_event_time(conn: sa.Connection) -> datetime | None:
    """The greatest event time observed so far (persisted across restarts)."""
    t = trigger_clock
    value = conn.execute(sa.select(t.c.value).where(t.c.name == "max_event_time")).scalar()
    return as_utc(value)


def raise_max_event_time(conn: sa.Connection, moment: datetime) -> None:
    """Store `moment` as the greatest event time unless a later one is stored."""
    t = trigger_clock
    current = max_event_time(conn)
    if current is None:
        conn.execute(sa.insert(t).values(name="max_event_time", value=moment))
    elif moment > current:
        conn.execute(sa.update(t).where(t.c.name == "max_event_time").values(value=moment))


# instances ----------------------------------------------------------------------------


def pending_due(conn: sa.Connection, upto: datetime, limit: int = CHUNK) -> list[dict[str, Any]]:
    """The next pending instances due at or before `upto`, in decision order."""
    t = trigger_instances
    query = (
        sa.select(t)
        .where(t.c.status == "pending", t.c.due_at <= upto)
        .order_by(t.c.due_at, t.c.priority.desc(), t.c.instance_id)
        .limit(limit)
    )
    return [row_dict(r) for r in conn.execute(query)]


def pending_between(
    conn: sa.Connection, customers: Iterable[str], after: datetime, upto: datetime
) -> list[dict[str, Any]]:
    """Pending instances of these customers due in (after, upto]."""
    t = trigger_instances
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        query = sa.select(t).where(
            t.c.status == "pending",
            t.c.customer_id.in_(part),
            t.c.due_at > after,
            t.c.due_at <= upto,
        )
        out.extend(row_dict(r) for r in conn.execute(query))
    return out


def fired_since(
    conn: sa.Connection, customers: Iterable[str], since: datetime
) -> list[dict[str, Any]]:
    """Fired instances of these customers due after `since` (for caps)."""
    t = trigger_instances
    cols = (t.c.instance_id, t.c.trigger, t.c.customer_id, t.c.due_at, t.c.priority)
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        query = sa.select(*cols).where(
            t.c.status == "fired", t.c.customer_id.in_(part), t.c.due_at > since
        )
        out.extend(row_dict(r) for r in conn.execute(query))
    return out


def record_decisions(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write decisions onto their (pending) instances."""
    if not rows:
        return
    t = trigger_instances
    stmt = (
        sa.update(t)
        .where(t.c.instance_id == sa.bindparam("b_id"), t.c.status == "pending")
        .values(
            status=sa.bindparam("b_status"),
            reason=sa.bindparam("b_reason"),
            detail=sa.bindparam("b_detail"),
            emission=sa.bindparam("b_emission"),
            delivery=sa.bindparam("b_delivery"),
            decided_at=sa.bindparam("b_decided_at"),
        )
    )
    conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])


def undelivered(conn: sa.Connection) -> list[dict[str, Any]]:
    """Fired instances whose emission no destination has acknowledged yet."""
    t = trigger_instances
    query = (
        sa.select(t)
        .where(t.c.status == "fired", t.c.delivery == "pending")
        .order_by(t.c.due_at, t.c.instance_id)
    )
    return [row_dict(r) for r in conn.execute(query)]


def set_delivery(conn: sa.Connection, instance_ids: Sequence[str], delivery: str) -> None:
    """Record what the destinations did with fired emissions."""
    t = trigger_instances
    for part in chunks(instance_ids):
        conn.execute(
            sa.update(t)
            .where(t.c.instance_id.in_(part), t.c.status == "fired")
            .values(delivery=delivery)
        )


# cancels, counts, activity ------------------------------------------------------------


def cancels_for(
    conn: sa.Connection,
    triggers: Iterable[str],
    customers: Iterable[str],
    keys: Iterable[str],
    lo: datetime,
    hi: datetime,
) -> list[dict[str, Any]]:
    """Cancel events of these triggers in [lo, hi], by customer, plus by key (global scope)."""
    t = trigger_cancels
    names = sorted(set(triggers))
    window = (t.c.trigger.in_(names), t.c.event_time >= lo, t.c.event_time <= hi)
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for part in chunks(customers):
        for r in conn.execute(sa.select(t).where(*window, t.c.customer_id.in_(part))):
            out[(r.trigger, r.customer_id, r.entity_key, r.message_id)] = row_dict(r)
    for part in chunks(k for k in keys if k):
        for r in conn.execute(sa.select(t).where(*window, t.c.entity_key.in_(part))):
            out[(r.trigger, r.customer_id, r.entity_key, r.message_id)] = row_dict(r)
    return list(out.values())


def count_rows(
    conn: sa.Connection, trigger: str, customers: Iterable[str], lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Counted events of one trigger for these customers in [lo, hi]."""
    t = trigger_counts
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        query = sa.select(t).where(
            t.c.trigger == trigger,
            t.c.customer_id.in_(part),
            t.c.event_time >= lo,
            t.c.event_time <= hi,
        )
        out.extend(row_dict(r) for r in conn.execute(query))
    return out


def activity_for(
    conn: sa.Connection, customers: Iterable[str], lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Product views and purchases of these customers in [lo, hi]."""
    t = trigger_activity
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        query = sa.select(t).where(
            t.c.customer_id.in_(part), t.c.event_time >= lo, t.c.event_time <= hi
        )
        out.extend(row_dict(r) for r in conn.execute(query))
    return out


def prune(conn: sa.Connection, cutoffs: Mapping[str, datetime]) -> None:
    """Delete rows no pending instance can need any more (see `TriggerEngine._cutoffs`)."""
    conn.execute(
        sa.delete(trigger_cancels).where(trigger_cancels.c.event_time < cutoffs["cancels"])
    )
    conn.execute(sa.delete(trigger_counts).where(trigger_counts.c.event_time < cutoffs["counts"]))
    conn.execute(
        sa.delete(trigger_activity).where(trigger_activity.c.event_time < cutoffs["activity"])
    )
    t = trigger_instances
    conn.execute(
        sa.delete(t).where(
            t.c.status != "pending",
            t.c.due_at < cutoffs["decisions"],
            sa.or_(t.c.delivery.is_(None), t.c.delivery != "pending"),
        )
    )
