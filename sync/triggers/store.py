"""Reads and writes of the trigger tables (SQLite and PostgreSQL, the same code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from sync.store.triggers import (
    Micros,
    from_micros,
    to_micros,
    trigger_activity,
    trigger_cancels,
    trigger_clock,
    trigger_counts,
    trigger_instances,
)
from sync.triggers.matching import ANY_KEY

CHUNK = 500


_DECISION_COLUMNS = ("status", "reason", "detail", "emission", "delivery", "decided_at")


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict (times are aware UTC already, see `Micros`)."""
    return dict(row._mapping)


@lru_cache(maxsize=64)
def _insert_sql(table: sa.Table, paramstyle: str) -> tuple[str, tuple[str, ...], tuple[bool, ...]]:
    names = tuple(c.name for c in table.columns)
    mark = "?" if paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join(mark for _ in names)}) ON CONFLICT DO NOTHING"
    )
    return sql, names, tuple(isinstance(c.type, Micros) for c in table.columns)


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key exists (so replays are idempotent).

    Straight to the driver's `executemany`: this runs for a few rows per event, and
    every value is already a driver-native type once times are made integers.
    """
    if not rows:
        return
    sql, names, micros = _insert_sql(table, conn.dialect.paramstyle)
    pick = itemgetter(*names)
    times = [i for i, is_time in enumerate(micros) if is_time]
    params = []
    for row in rows:
        values = list(pick(row))
        for i in times:
            if values[i] is not None:
                values[i] = to_micros(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


def chunks(values: Iterable[str]) -> Iterable[list[str]]:
    """Distinct values in chunks small enough for an `IN (...)`."""
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(conn: sa.Connection, n: int = 1) -> str:
    """`n` driver placeholders, comma-separated."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join(mark for _ in range(n))


_INSTANCE_COLUMNS = tuple(c.name for c in trigger_instances.columns)
_LIGHT_COLUMNS = tuple(n for n in _INSTANCE_COLUMNS if n not in ("start", "emission", "detail"))
_TIME_COLUMNS = frozenset(
    c.name
    for table in (trigger_instances, trigger_cancels, trigger_counts, trigger_activity)
    for c in table.columns
    if isinstance(c.type, Micros)
)


def _fetch(
    conn: sa.Connection, sql: str, params: Sequence[Any], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows of a hand-written SELECT of `names`, times made aware datetimes.

    The hot reads skip SQLAlchemy's result layer: a few hundred thousand rows a run,
    where building rows and processing each time column cost more than the query.
    """
    times = [i for i, name in enumerate(names) if name in _TIME_COLUMNS]
    out = []
    for values in conn.exec_driver_sql(sql, tuple(params)).fetchall():
        row = dict(zip(names, values, strict=True))
        for i in times:
            value = values[i]
            if value is not None:
                row[names[i]] = from_micros(value)
        out.append(row)
    return out


# clock ------------------------------------------------------------------------------


def max_event_time(conn: sa.Connection) -> datetime | None:
    """The greatest event time observed so far (persisted across restarts)."""
    t = trigger_clock
    value = conn.execute(sa.select(t.c.value).where(t.c.name == "max_event_time")).scalar()
    return value if isinstance(value, datetime) else None


def raise_max_event_time(conn: sa.Connection, moment: datetime) -> None:
    """Store `moment` as the greatest event time unless a later one is stored."""
    t = trigger_clock
    current = max_event_time(conn)
    if current is None:
        conn.execute(sa.insert(t).values(name="max_event_time", value=moment))
    elif moment > current:
        conn.execute(sa.update(t).where(t.c.name == "max_event_time").values(value=moment))


# instances ----------------------------------------------------------------------------


_NOT_BY_STATUS = "(status || '')"
"""Keeps SQLite (no statistics) off the (status, due_at) index: for `status = ? AND
customer_id IN (...)` it would walk every fired (or pending) instance in the window;
by customer it reads only the chunk's customers."""


def pending_due(conn: sa.Connection, upto: datetime, limit: int = CHUNK) -> list[dict[str, Any]]:
    """The next pending instances due at or before `upto`, in decision order."""
    mark = _marks(conn)
    sql = (
        f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM {trigger_instances.name} "
        f"WHERE status = 'pending' AND due_at <= {mark} "
        f"ORDER BY due_at, priority DESC, instance_id LIMIT {int(limit)}"
    )
    return _fetch(conn, sql, (to_micros(upto),), _INSTANCE_COLUMNS)


def pending_between(
    conn: sa.Connection, customers: Iterable[str], after: datetime, upto: datetime
) -> list[dict[str, Any]]:
    """Pending instances of these customers due in (after, upto]."""
    out: list[dict[str, Any]] = []
    mark = _marks(conn)
    for part in chunks(customers):
        sql = (
            f"SELECT {', '.join(_LIGHT_COLUMNS)} FROM {trigger_instances.name} "
            f"WHERE {_NOT_BY_STATUS} = 'pending' AND customer_id IN ({_marks(conn, len(part))}) "
            f"AND due_at > {mark} AND due_at <= {mark}"
        )
        params = (*part, to_micros(after), to_micros(upto))
        out.extend(_fetch(conn, sql, params, _LIGHT_COLUMNS))
    return out


def fired_since(
    conn: sa.Connection, customers: Iterable[str], since: datetime
) -> list[dict[str, Any]]:
    """Fired instances of these customers due after `since` (for caps)."""
    names = ("instance_id", "trigger", "customer_id", "due_at", "priority")
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        sql = (
            f"SELECT {', '.join(names)} FROM {trigger_instances.name} "
            f"WHERE {_NOT_BY_STATUS} = 'fired' AND customer_id IN ({_marks(conn, len(part))}) "
            f"AND due_at > {_marks(conn)}"
        )
        out.extend(_fetch(conn, sql, (*part, to_micros(since)), names))
    return out


def record_decisions(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write decisions onto their (pending) instances."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sets = ", ".join(f"{name} = {mark}" for name in _DECISION_COLUMNS)
    sql = (
        f"UPDATE {trigger_instances.name} SET {sets} "
        f"WHERE instance_id = {mark} AND status = 'pending'"
    )
    params = [
        (*(row[name] for name in _DECISION_COLUMNS[:-1]), to_micros(row["decided_at"]), row["id"])
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)


def undelivered(conn: sa.Connection) -> list[dict[str, Any]]:
    """Fired instances whose emission no destination has acknowledged yet."""
    t = trigger_instances
    query = (
        sa.select(t)
        .where(sa.text("delivery = 'pending'"))  # a literal, so the partial index applies
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


def earliest_cancels(
    conn: sa.Connection, instance_ids: Iterable[str], global_triggers: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The earliest cancel event of each instance, if any, with event time in [start, due].

    A cancel event matches the instance's trigger, the customer (or, for triggers with
    `key_scope = "global"`, the entity key across customers) and the entity key (or
    `*`: a cancel event without the key). An event that also starts the trigger does
    not cancel an instance that started at the same time with a greater message id.

    Each scope is its own correlated subquery that walks one index range in
    (event time, message id) order, so finding the earliest is a seek, not a scan.
    """
    i, c = trigger_instances.alias("i"), trigger_cancels
    ids = list(instance_ids)
    local = sa.and_(
        c.c.customer_id == i.c.customer_id, c.c.entity_key.in_([i.c.entity_key, ANY_KEY])
    )
    found: dict[str, list[tuple[str, str, str]]] = {}
    _earliest_in(conn, i, ids, local, i.c.customer_id, found)
    scoped = sorted(set(global_triggers))
    if scoped:
        across = sa.and_(i.c.trigger.in_(scoped), c.c.entity_key == i.c.entity_key)
        _earliest_in(conn, i, ids, across, i.c.entity_key, found)
    events = _cancel_rows(conn, [hit for hits in found.values() for hit in hits])
    out: dict[str, dict[str, Any]] = {}
    for iid, hits in found.items():
        rows = [events[(t, m)] for t, _w, m in hits if (t, m) in events]
        if rows:
            out[iid] = min(rows, key=lambda r: (r["event_time"], r["message_id"]))
    return out


def _earliest_in(
    conn: sa.Connection,
    i: Any,
    instance_ids: list[str],
    scope: Any,
    who: Any,
    found: dict[str, list[tuple[str, str, str]]],
) -> None:
    """Add the earliest cancel in `scope` to `found`: id → [(trigger, "column:value", message)]."""
    c = trigger_cancels
    earliest = (
        sa.select(c.c.message_id)
        .where(
            c.c.trigger == i.c.trigger,
            scope,
            c.c.event_time >= i.c.start_time,
            c.c.event_time <= i.c.due_at,
            c.c.message_id != i.c.start_message_id,
            sa.not_(
                sa.and_(
                    c.c.also_start,
                    c.c.event_time == i.c.start_time,
                    c.c.message_id <= i.c.start_message_id,
                )
            ),
        )
        .order_by(c.c.event_time, c.c.message_id)
        .limit(1)
        .correlate(i)
        .scalar_subquery()
    )
    for part in chunks(instance_ids):
        query = sa.select(i.c.instance_id, i.c.trigger, who, earliest).where(
            i.c.instance_id.in_(part)
        )
        for iid, trigger, value, message_id in conn.execute(query):
            if message_id is not None:
                found.setdefault(iid, []).append((trigger, f"{who.name}:{value}", message_id))


def _cancel_rows(
    conn: sa.Connection, hits: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Cancel rows by (trigger, message id), read by index prefix (trigger, customer or key)."""
    c = trigger_cancels
    wanted: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for trigger, who, message_id in hits:
        column, _, value = who.partition(":")
        values, messages = wanted.setdefault((trigger, column), (set(), set()))
        values.add(value)
        messages.add(message_id)
    cols = (c.c.trigger, c.c.message_id, c.c.event, c.c.event_time, c.c.also_start)
    events: dict[tuple[str, str], dict[str, Any]] = {}
    for (trigger, column), (values, messages) in wanted.items():
        for part in chunks(values):
            for few in chunks(messages):
                query = sa.select(*cols).where(
                    c.c.trigger == trigger, c.c[column].in_(part), c.c.message_id.in_(few)
                )
                events.update({(r.trigger, r.message_id): row_dict(r) for r in conn.execute(query)})
    return events


def count_rows(
    conn: sa.Connection, trigger: str, customers: Iterable[str], lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Counted events of one trigger for these customers in [lo, hi], without snapshots.

    The `start` snapshot of the few that qualify comes from `count_starts`.
    """
    names = ("trigger", "customer_id", "group_key", "event_time", "message_id")
    out: list[dict[str, Any]] = []
    mark = _marks(conn)
    for part in chunks(customers):
        sql = (
            f"SELECT {', '.join(names)} FROM {trigger_counts.name} WHERE trigger = {mark} "
            f"AND customer_id IN ({_marks(conn, len(part))}) "
            f"AND event_time >= {mark} AND event_time <= {mark}"
        )
        params = (trigger, *part, to_micros(lo), to_micros(hi))
        out.extend(_fetch(conn, sql, params, names))
    return out


def count_starts(
    conn: sa.Connection, trigger: str, events: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str, datetime, str], bytes]:
    """The `start` snapshots of these counted events of one trigger, by primary key."""
    names = ("customer_id", "group_key", "event_time", "message_id", "start")
    out: dict[tuple[str, str, datetime, str], bytes] = {}
    mark = _marks(conn)
    for part in chunks(e["customer_id"] for e in events):
        inside = set(part)
        for few in chunks(e["message_id"] for e in events if e["customer_id"] in inside):
            sql = (
                f"SELECT {', '.join(names)} FROM {trigger_counts.name} WHERE trigger = {mark} "
                f"AND customer_id IN ({_marks(conn, len(part))}) "
                f"AND message_id IN ({_marks(conn, len(few))})"
            )
            for row in _fetch(conn, sql, (trigger, *part, *few), names):
                key = (row["customer_id"], row["group_key"], row["event_time"], row["message_id"])
                out[key] = row["start"]
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
    for status in ("fired", "cancelled", "suppressed"):  # one index range each
        conn.execute(
            sa.delete(t).where(
                t.c.status == status,
                t.c.due_at < cutoffs["decisions"],
                sa.or_(t.c.delivery.is_(None), t.c.delivery != "pending"),
            )
        )
