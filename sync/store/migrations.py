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

Step = Callable[[sa.Connection], None]


def _create_all(conn: sa.Connection) -> None:
    # Import every area's tables so they are registered on the metadata.
    from sync.store import tables  # noqa: F401

    schema.metadata.create_all(conn)


STEPS: list[Step] = [_create_all]
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
