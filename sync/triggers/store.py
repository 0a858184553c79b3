"""Reads and writes of the trigger tables (SQLite and PostgreSQL, the same code)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa

from sync.store.triggers import (
    Micros,
    from_micros,
    marks,
    placeholder,
    to_micros,
    trigger_activity,
    trigger_clock,
    trigger_instances,
)
from sync.triggers import journal
from sync.triggers.matching import ANY_KEY
from sync.triggers.observe import ProductActivity
from sync.triggers.window import CancelEvent

CHUNK = 500


_DECISION_COLUMNS = ("status", "reason", "detail", "emission", "delivery", "decided_at")
DROPPED = b"{}"
"""The start snapshot of an instance decided without firing: nothing reads it again
(follow-ups and emissions come only from fired instances), so it is not kept."""


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict (times are aware UTC already, see `Micros`)."""
    return dict(row._mapping)


@lru_cache(maxsize=64)
def _insert_sql(table: sa.Table, paramstyle: str) -> tuple[str, tuple[str, ...], tuple[bool, ...]]:
    names = tuple(c.name for c in table.columns)
    mark = placeholder(paramstyle)
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
    # In primary-key order, the inserts walk the B-tree once instead of hopping around
    # it. The sort is stable, so of rows sharing a key the first still wins.
    key = _key_getter(table)
    params.sort(key=key)
    conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=64)
def _key_getter(table: sa.Table) -> Any:
    names = [c.name for c in table.columns]
    return itemgetter(*(names.index(c.name) for c in table.primary_key.columns))


def chunks(values: Iterable[str]) -> Iterable[list[str]]:
    """Distinct values in chunks small enough for an `IN (...)`."""
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


_INSTANCE_COLUMNS = tuple(c.name for c in trigger_instances.columns)
_LIGHT_COLUMNS = tuple(n for n in _INSTANCE_COLUMNS if n not in ("start", "emission", "detail"))
_TIME_COLUMNS = frozenset(
    c.name
    for table in (trigger_instances, trigger_activity)
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
"""Keeps SQLite (no statistics) off the (status, due_at) index where another is better."""


def _by_customer(conn: sa.Connection, status: str) -> str:
    """`FROM` for a lookup by customer of `status` instances (its partial index).

    SQLite has no statistics and would walk every pending (or fired) instance by the
    status index; PostgreSQL's planner picks the partial index itself.
    """
    hint = f" INDEXED BY ix_trigger_instances_{status}" if conn.dialect.name == "sqlite" else ""
    return f"{trigger_instances.name}{hint}"


def pending_due(conn: sa.Connection, upto: datetime, limit: int = CHUNK) -> list[dict[str, Any]]:
    """The next pending instances due at or before `upto`, in decision order."""
    mark = marks(conn)
    sql = (
        f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM {trigger_instances.name} "
        f"WHERE status = 'pending' AND due_at <= {mark} "
        f"ORDER BY due_at, priority DESC, instance_id LIMIT {int(limit)}"
    )
    return _fetch(conn, sql, (to_micros(upto),), _INSTANCE_COLUMNS)


def marked_before(conn: sa.Connection, limit: datetime, size: int = CHUNK) -> list[dict[str, Any]]:
    """Pending instances holding a cancel event older than `limit` (a final one)."""
    # Without statistics SQLite would walk every pending instance by the status index.
    hint = " INDEXED BY ix_trigger_instances_marked" if conn.dialect.name == "sqlite" else ""
    sql = (
        f"SELECT {', '.join(_MARK_COLUMNS)} FROM {trigger_instances.name}{hint} "
        "WHERE status = 'pending' AND cancel_time IS NOT NULL "
        f"AND cancel_time < {marks(conn)} ORDER BY cancel_time, instance_id LIMIT {int(size)}"
    )
    return _fetch(conn, sql, (to_micros(limit),), _MARK_COLUMNS)


_MARK_COLUMNS = (
    "instance_id",
    "trigger",
    "cancel_time",
    "cancel_message_id",
    "cancel_event",
    "cancel_also_start",
)


def pending_between(
    conn: sa.Connection,
    customers: Iterable[str],
    after: datetime,
    upto: datetime,
    *,
    above: int | None = None,
) -> list[dict[str, Any]]:
    """Pending instances of these customers due in (after, upto] (priority > `above`)."""
    out: list[dict[str, Any]] = []
    mark = marks(conn)
    ranked = "" if above is None else f" AND priority > {mark}"
    for part in chunks(customers):
        sql = (
            f"SELECT {', '.join(_LIGHT_COLUMNS)} FROM {_by_customer(conn, 'pending')} "
            f"WHERE status = 'pending' AND customer_id IN ({marks(conn, len(part))}) "
            f"AND due_at > {mark} AND due_at <= {mark}{ranked}"
        )
        params: tuple[Any, ...] = (*part, to_micros(after), to_micros(upto))
        if above is not None:
            params += (above,)
        out.extend(_fetch(conn, sql, params, _LIGHT_COLUMNS))
    return out


def fired_since(
    conn: sa.Connection,
    customers: Iterable[str],
    since: datetime,
    longer: Mapping[str, datetime] | None = None,
) -> list[dict[str, Any]]:
    """Fired instances of these customers due after `since` (for caps).

    Args:
        longer: Trigger → an earlier `since` for its own instances (a cap of that
            trigger looks further back than the global cap), so a 30-day cap does not
            read every trigger's 30 days.
    """
    names = ("instance_id", "trigger", "customer_id", "due_at", "priority")
    extra = dict(sorted((longer or {}).items()))
    mark = marks(conn)
    window = " OR ".join(
        [f"due_at > {mark}", *(f"(trigger = {mark} AND due_at > {mark})" for _ in extra)]
    )
    bounds: list[Any] = [to_micros(since)]
    for name, moment in extra.items():
        bounds += [name, to_micros(moment)]
    out: list[dict[str, Any]] = []
    for part in chunks(customers):
        sql = (
            f"SELECT {', '.join(names)} FROM {_by_customer(conn, 'fired')} "
            f"WHERE status = 'fired' AND customer_id IN ({marks(conn, len(part))}) "
            f"AND due_at > {mark} AND ({window})"
        )
        lowest = min([since, *extra.values()])
        out.extend(_fetch(conn, sql, (*part, to_micros(lowest), *bounds), names))
    return out


def record_decisions(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write decisions onto their (pending) instances."""
    if not rows:
        return
    mark = marks(conn)
    sets = ", ".join(f"{name} = {mark}" for name in _DECISION_COLUMNS)
    sql = (
        f"UPDATE {trigger_instances.name} SET {sets}, "
        f"start = CASE WHEN {mark} THEN {mark} ELSE start END "
        f"WHERE instance_id = {mark} AND status = 'pending'"
    )
    params = [
        (
            *(row[name] for name in _DECISION_COLUMNS[:-1]),
            to_micros(row["decided_at"]),
            row["status"] != "fired",  # a fired instance keeps its start (emission, follow-ups)
            DROPPED,
            row["id"],
        )
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)


def undelivered(conn: sa.Connection, *, decided_before: datetime) -> list[dict[str, Any]]:
    """Fired instances, decided before `decided_before`, whose emission no destination has
    acknowledged yet."""
    t = trigger_instances
    query = (
        sa.select(t)
        .where(sa.text("delivery = 'pending'"))  # a literal, so the partial index applies
        .where(t.c.decided_at < decided_before)
        .order_by(t.c.due_at, t.c.instance_id)
    )
    return [row_dict(r) for r in conn.execute(query)]


def set_delivery(conn: sa.Connection, instance_ids: Sequence[str], delivery: str) -> None:
    """Record what the destinations did with fired emissions."""
    for part in chunks(instance_ids):
        # By primary key: on the status index SQLite would walk every fired instance.
        sql = (
            f"UPDATE {trigger_instances.name} SET delivery = {marks(conn)} "
            f"WHERE instance_id IN ({marks(conn, len(part))}) AND {_NOT_BY_STATUS} = 'fired'"
        )
        conn.exec_driver_sql(sql, (delivery, *part))


# cancels and activity ------------------------------------------------------------------


def _mark_sql(conn: sa.Connection, scope: str, *, by_customer: bool) -> str:
    mark = marks(conn)
    return (
        f"UPDATE {_by_customer(conn, 'pending') if by_customer else _by_entity(conn)} "
        f"SET cancel_time = {mark}, "
        f"cancel_message_id = {mark}, cancel_event = {mark}, cancel_also_start = {mark} "
        f"WHERE {scope} AND trigger = {mark} AND due_at >= {mark} AND start_time <= {mark} "
        f"AND status = 'pending' AND start_message_id <> {mark} "
        f"AND NOT ({mark} AND start_time = {mark} AND start_message_id >= {mark}) "
        f"AND (cancel_time IS NULL OR cancel_time > {mark} "
        f"OR (cancel_time = {mark} AND cancel_message_id > {mark}))"
    )


def mark_cancelled(
    conn: sa.Connection, events: Sequence[CancelEvent], across: frozenset[str]
) -> None:
    """Record cancel events on the stored pending instances they cancel.

    Each instance keeps the earliest (event time, message id) cancel in its
    [start_time, due_at], as `sync.triggers.window.cancels` defines it: the same
    customer with the same entity key, or `*` (a cancel event without the key); for
    triggers in `across` (`key_scope = "global"`) also the same key of any customer.
    """
    if not events:
        return
    mark = marks(conn)
    local = f"customer_id = {mark} AND (entity_key = {mark} OR {mark} = '{ANY_KEY}')"
    params = [
        (at, mid, event, also, customer, key, key, trigger, at, at, mid, also, at, mid, at, at, mid)
        for trigger, customer, key, at, mid, event, also in events
    ]
    conn.exec_driver_sql(_mark_sql(conn, local, by_customer=True), params)
    wide = [
        (at, mid, event, also, key, trigger, at, at, mid, also, at, mid, at, at, mid)
        for trigger, _customer, key, at, mid, event, also in events
        if trigger in across and key != ANY_KEY
    ]
    if wide:
        conn.exec_driver_sql(_mark_sql(conn, f"entity_key = {mark}", by_customer=False), wide)


def mark_of(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The instance's earliest cancel event (as the decision explains it), if any."""
    if row.get("cancel_time") is None:
        return None
    return {
        "trigger": row["trigger"],
        "message_id": row["cancel_message_id"],
        "event": row["cancel_event"],
        "event_time": row["cancel_time"],
        "also_start": bool(row["cancel_also_start"]),
    }


def _by_entity(conn: sa.Connection) -> str:
    hint = " INDEXED BY ix_trigger_instances_entity" if conn.dialect.name == "sqlite" else ""
    return f"{trigger_instances.name}{hint}"


def ensure_key_index(conn: sa.Connection) -> None:
    """An index for cancels across customers, created only when a trigger needs it."""
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS ix_trigger_instances_entity "
        f"ON {trigger_instances.name} (entity_key, due_at)"
    )


def write_activity(conn: sa.Connection, items: Sequence[ProductActivity]) -> None:
    """Store a batch's product activity, one row per customer (replays write nothing)."""
    if not items:
        return
    by_customer: dict[str, dict[tuple[str, str, str, int], dict[str, Any]]] = {}
    for customer, kind, product_id, message_id, at, product in items:
        slot = (kind, product_id, message_id, at)
        by_customer.setdefault(customer, {})[slot] = product
    rows = []
    for customer, found in sorted(by_customer.items()):
        keys = sorted(found)
        digest = hashlib.blake2b(digest_size=20)
        for kind, product_id, message_id, at in keys:
            digest.update(f"{kind}\x1f{product_id}\x1f{message_id}\x1f{at}\x1e".encode())
        times = [k[3] for k in keys]
        blob = orjson.dumps([[*k, found[k]] for k in keys])
        rows.append((customer, digest.hexdigest(), min(times), max(times), blob))
    sql = (
        f"INSERT INTO {trigger_activity.name} "
        "(customer_id, journal_id, min_time, max_time, items) "
        f"VALUES ({marks(conn, 5)}) ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, rows)


def activity_for(
    conn: sa.Connection, customers: Iterable[str], lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Product views and purchases of these customers in [lo, hi], each once.

    Rows: `customer_id`, `kind`, `product_id`, `message_id`, `event_time`, `product`.
    """
    low, high = to_micros(lo), to_micros(hi)
    seen: dict[tuple[str, str, str, str, int], dict[str, Any]] = {}
    for part in chunks(customers):
        sql = (
            f"SELECT customer_id, items FROM {trigger_activity.name} "
            f"WHERE customer_id IN ({marks(conn, len(part))}) "
            f"AND max_time >= {marks(conn)} AND min_time <= {marks(conn)}"
        )
        for customer, blob in conn.exec_driver_sql(sql, (*part, low, high)).fetchall():
            for kind, product_id, message_id, at, product in orjson.loads(blob):
                if low <= at <= high:
                    seen.setdefault((customer, kind, product_id, message_id, at), product)
    return [
        {
            "customer_id": customer,
            "kind": kind,
            "product_id": product_id,
            "message_id": message_id,
            "event_time": from_micros(at),
            "product": product,
        }
        for (customer, kind, product_id, message_id, at), product in sorted(seen.items())
    ]


def prune(conn: sa.Connection, cutoffs: Mapping[str, datetime]) -> None:
    """Delete rows no pending instance can need any more (see `TriggerEngine._cutoffs`)."""
    journal.prune(conn, journal.CANCEL, to_micros(cutoffs["cancels"]))
    journal.prune(conn, journal.COUNT, to_micros(cutoffs["counts"]))
    conn.execute(
        sa.delete(trigger_activity).where(trigger_activity.c.max_time < cutoffs["activity"])
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
