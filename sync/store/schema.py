"""Tables of the state store, on one `metadata`.

Each area defines its own tables in its module (`sync/store/identity.py`, …) on this
`metadata`; `sync.store.migrations` creates and upgrades them all.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

Timestamp = sa.DateTime(timezone=True)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", Timestamp, nullable=False),
)

bookmarks = sa.Table(
    "bookmarks",
    metadata,
    sa.Column("sync", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("bookmark", sa.JSON, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

sent_ledger = sa.Table(
    "sent_ledger",
    metadata,
    sa.Column("destination", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | acknowledged
    sa.Column("sync", sa.String(200), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("source_ref", sa.String(1000), nullable=False),
    sa.Column("acknowledged_at", Timestamp, nullable=True),
    # Retention deletes acknowledged keys by age (`sync.store.retention`); times only
    # grow, so this index is appended to at its right edge (pending keys: NULL).
    sa.Index("ix_sent_ledger_acknowledged_at", "acknowledged_at"),
)

rejected_rows = sa.Table(
    "rejected_rows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, nullable=False, index=True),
    sa.Column("sync", sa.String(200), nullable=False, index=True),
    sa.Column("stage", sa.String(40), nullable=False),
    sa.Column("destination", sa.String(200), nullable=True),
    sa.Column("source_ref", sa.String(1000), nullable=False),
    sa.Column("key", sa.String(400), nullable=True),
    sa.Column("field", sa.String(400), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("retried_at", Timestamp, nullable=True),
    sa.Index("ix_rejected_rows_created_at", "created_at"),  # retention
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sync", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),  # running | completed | failed
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("api_calls", sa.JSON, nullable=False),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Index("ix_runs_ended_at", "ended_at"),  # retention (a running run has none)
    # Every run start closes its sync's records left `running` (`abandon_runs`): without
    # this, that update scans every record the sync ever had (serve opens thousands a day).
    # Stores of schema version 2 get it with the retention indexes (migration step 3).
    sa.Index("ix_runs_sync_status", "sync", "status"),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)
