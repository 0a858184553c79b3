"""Tables of the identity graph (on `sync.store.schema.metadata`).

- `identity_identifiers`: every identifier ever seen → its customer (the graph's edges,
  collapsed to components). Looked up per batch by (kind, value); never loaded whole.
- `identity_customers`: one row per live customer, with its latest traits.
- `identity_merges`: merge history: a customer id that stopped existing, and where it went.
- `identity_conflicts`: merges a limit refused, with both sides (one row per distinct
  conflict, however often it recurs).
"""

from __future__ import annotations

import sqlalchemy as sa

from sync.store.schema import Timestamp, metadata

identity_identifiers = sa.Table(
    "identity_identifiers",
    metadata,
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(512), primary_key=True),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    # Event times as epoch microseconds: compact, and cheap to read and write in bulk.
    sa.Column("first_seen_us", sa.BigInteger, nullable=False),
    sa.Column("last_seen_us", sa.BigInteger, nullable=False),
)

identity_customers = sa.Table(
    "identity_customers",
    metadata,
    sa.Column("customer_id", sa.String(40), primary_key=True),
    # JSON text written and read with orjson (the hot path of every batch).
    sa.Column("traits", sa.Text, nullable=False),
    sa.Column("trait_stamps", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

identity_merges = sa.Table(
    "identity_merges",
    metadata,
    sa.Column("from_customer_id", sa.String(40), primary_key=True),
    sa.Column("into_customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("merged_at", Timestamp, nullable=False),
)

identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("value", sa.String(512), nullable=False),
    sa.Column("limit_kind", sa.String(64), nullable=False),
    sa.Column("limit", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("other_customer_id", sa.String(40), nullable=False),
    sa.Column("sides", sa.JSON, nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("event_time", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("kind", "value", "customer_id", "other_customer_id", name="uq_conflict"),
)
