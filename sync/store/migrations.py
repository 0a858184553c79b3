"""Versioned schema migrations.

Version 1 creates every table registered on `schema.metadata`. A later change to an
existing table appends a step to `STEPS`; steps run in order, each in a transaction,
and the applied version is recorded in `schema_version`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from sync.store import schema
from sync.store.triggers import trigger_instances

Step = Callable[[sa.Connection], None]


def _create_all(conn: sa.Connection) -> None:
    # Import every area's tables so they are registered on the metadata.
    from sync.store import tables  # noqa: F401

    schema.metadata.create_all(conn)


def _trigger_cancel_marks(conn: sa.Connection) -> None:
    """Instances carry their earliest cancel; cancels and counts move to the journal.

    Databases created by version 1 of this code lack the mark columns; the per-event
    `trigger_cancels` and `trigger_counts` tables are replaced by `trigger_journal`,
    and `trigger_activity` holds one row per customer and batch (both created by
    `_create_all` after the steps; product activity seen before the upgrade is not
    carried over, so recommendations fall back to the bestsellers until new views).
    Pending instances get the earliest stored cancel of their own customer before the
    old table goes.
    """
    inspector = sa.inspect(conn)
    if inspector.has_table("trigger_instances"):
        have = {c["name"] for c in inspector.get_columns("trigger_instances")}
        for column in trigger_instances.columns:
            if column.name not in have:  # the cancel_* columns
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(
                    f"ALTER TABLE trigger_instances ADD COLUMN {column.name} {kind}"
                )
        for index in trigger_instances.indexes:  # the new partial ones; the others exist
            index.create(conn, checkfirst=True)
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_trigger_instances_customer")
    if inspector.has_table("trigger_cancels"):
        _mark_pending(conn)
    for old in ("trigger_cancels", "trigger_counts", "trigger_activity"):
        if inspector.has_table(old):
            conn.exec_driver_sql(f"DROP TABLE {old}")


_EARLIEST = (
    "(SELECT c.{column} FROM trigger_cancels c WHERE c.trigger = i.trigger "
    "AND c.customer_id = i.customer_id AND c.entity_key IN (i.entity_key, '*') "
    "AND c.event_time >= i.start_time AND c.event_time <= i.due_at "
    "AND c.message_id <> i.start_message_id AND NOT (c.also_start "
    "AND c.event_time = i.start_time AND c.message_id <= i.start_message_id) "
    "ORDER BY c.event_time, c.message_id LIMIT 1)"
)


def _mark_pending(conn: sa.Connection) -> None:
    sets = ", ".join(
        f"{mark} = {_EARLIEST.format(column=column)}"
        for mark, column in (
            ("cancel_time", "event_time"),
            ("cancel_message_id", "message_id"),
            ("cancel_event", "event"),
            ("cancel_also_start", "also_start"),
        )
    )
    conn.exec_driver_sql(f"UPDATE trigger_instances AS i SET {sets} WHERE i.status = 'pending'")


def _retention_indexes(conn: sa.Connection) -> None:
    """Indexes these tables gained after version 2: the time indexes that let retention
    (`sync.store.retention`) find old rows without scanning whole tables, and any other
    declared on them since.

    On a large existing `sent_ledger` this reads every row once, at the first start of
    this version: writes to the store wait meanwhile (about a second per million rows
    on SQLite, see `bench/state_growth.py`); reads go on.
    """
    inspector = sa.inspect(conn)
    for table in (schema.sent_ledger, schema.rejected_rows, schema.runs):
        if not inspector.has_table(table.name):
            continue
        for index in table.indexes:
            index.create(conn, checkfirst=True)


STEPS: list[Step] = [_create_all, _trigger_cancel_marks, _retention_indexes]
"""Migration steps; step i upgrades the schema from version i to i + 1."""


def current_version(conn: sa.Connection) -> int:
    """The applied schema version (0 for an empty database)."""
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def migrate(engine: sa.Engine) -> int:
    """Bring the database to the latest version; return that version."""
    with engine.begin() as conn:
        version = current_version(conn)
    for number, step in enumerate(STEPS[version:], start=version + 1):
        with engine.begin() as conn:
            step(conn)
            conn.execute(
                sa.insert(schema.schema_version).values(
                    version=number, applied_at=datetime.now(UTC)
                )
            )
    # A table added by a newer release than the database's version 1 (not a change to an
    # existing one, which needs a step) is created here; existing tables are left alone.
    with engine.begin() as conn:
        _create_all(conn)
    return len(STEPS)
