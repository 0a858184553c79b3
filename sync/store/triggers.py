"""Tables of the trigger engine (`sync.triggers`).

Pending instances live here, indexed by due time, so a restart loses none and a
million open carts never sit in memory. Every other table is bounded: rows are
pruned once the watermark has passed the time they could still matter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sync.store.schema import metadata

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch (naive datetimes are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _US


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of `to_micros`."""
    return EPOCH + timedelta(microseconds=value)


def placeholder(paramstyle: str) -> str:
    """The driver's parameter placeholder (the hot paths skip SQLAlchemy's compiler)."""
    return "?" if paramstyle == "qmark" else "%s"


def marks(conn: sa.Connection, n: int = 1) -> str:
    """`n` driver placeholders, comma-separated."""
    return ", ".join(placeholder(conn.dialect.paramstyle) for _ in range(n))


class Micros(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime stored as integer microseconds since the epoch.

    Trigger tables hold a few rows per event; integers bind, compare and index far
    cheaper than SQLite's datetime strings, and sort the same on every backend.
    """

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


Timestamp = Micros()


def _partial(name: str, where: str, *columns: str) -> sa.Index:
    """A partial index, on SQLite and PostgreSQL alike."""
    return sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


Id = sa.String(64)
Name = sa.String(100)
Key = sa.String(400)
# Snapshots are orjson bytes, not sa.JSON: ~10x cheaper to write and read on the hot path.

trigger_instances = sa.Table(
    "trigger_instances",
    metadata,
    sa.Column("instance_id", Id, primary_key=True),
    sa.Column("trigger", Name, nullable=False),
    sa.Column("customer_id", Key, nullable=False),
    sa.Column("entity_key", Key, nullable=False),  # "" when matched by customer
    sa.Column("start_message_id", Key, nullable=False),
    sa.Column("start_time", Timestamp, nullable=False),
    sa.Column("due_at", Timestamp, nullable=False),
    sa.Column("planned_due", Timestamp, nullable=False),  # before quiet hours moved it
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("parent_id", Id, nullable=True),
    sa.Column("start", sa.LargeBinary, nullable=False),  # orjson: start message + customer
    sa.Column("status", sa.String(20), nullable=False),  # pending | fired | cancelled | suppressed
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("emission", sa.LargeBinary, nullable=True),  # orjson: the emitted message
    sa.Column("delivery", sa.String(20), nullable=True),  # pending | delivered | rejected
    sa.Column("decided_at", Timestamp, nullable=True),
    # The earliest cancel event seen in [start_time, due_at], set when it is observed.
    sa.Column("cancel_time", Timestamp, nullable=True),
    sa.Column("cancel_message_id", Key, nullable=True),
    sa.Column("cancel_event", sa.String(200), nullable=True),
    sa.Column("cancel_also_start", sa.Boolean, nullable=True),
    sa.Index("ix_trigger_instances_due", "status", "due_at"),
    # By customer, only the pending (cancel marks, rivals) and the fired (caps): the
    # many instances decided otherwise are in no customer index at all.
    _partial("ix_trigger_instances_pending", "status = 'pending'", "customer_id", "due_at"),
    _partial("ix_trigger_instances_fired", "status = 'fired'", "customer_id", "due_at"),
    # Pending instances already holding a cancel, decided once it is final.
    _partial(
        "ix_trigger_instances_marked",
        "status = 'pending' AND cancel_time IS NOT NULL",
        "cancel_time",
    ),
    # Only emissions awaiting an acknowledgement (a handful) are indexed.
    _partial("ix_trigger_instances_undelivered", "delivery = 'pending'", "due_at"),
)

trigger_journal = sa.Table(
    "trigger_journal",
    metadata,
    # Cancel and counted events, one row per observed batch and kind (orjson), instead
    # of a row per event: the engine keeps the recent ones in memory (`sync.triggers.
    # window`) and reads this table after a restart, or for an event older than that.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("journal_id", Id, nullable=False, unique=True),  # batch digest + kind
    sa.Column("kind", sa.String(10), nullable=False),  # cancel | count
    sa.Column("min_time", Timestamp, nullable=False),
    sa.Column("max_time", Timestamp, nullable=False),
    sa.Column("entries", sa.LargeBinary, nullable=False),  # the events, without snapshots
    sa.Column("starts", sa.LargeBinary, nullable=True),  # counted events' start snapshots
    sa.Index("ix_trigger_journal_time", "kind", "max_time"),
)

trigger_activity = sa.Table(
    "trigger_activity",
    metadata,
    # Product views and purchases for content blocks: one row per customer and batch
    # (orjson items), read only for the customers of firing instances.
    sa.Column("customer_id", Key, primary_key=True),
    sa.Column("journal_id", Id, primary_key=True),  # digest of the items
    sa.Column("min_time", Timestamp, nullable=False),
    sa.Column("max_time", Timestamp, nullable=False),
    sa.Column("items", sa.LargeBinary, nullable=False),
    sa.Index("ix_trigger_activity_time", "max_time"),
)

trigger_clock = sa.Table(
    "trigger_clock",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", Timestamp, nullable=False),
)
