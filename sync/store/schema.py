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
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)
