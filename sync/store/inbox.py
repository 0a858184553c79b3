"""The inbox: Segment messages accepted by the real-time ingest, in arrival order.

`id` orders the inbox (a sync's bookmark is the last id it read); `message_id` is
unique, so a message retried by a client is stored once. Ids must become visible in
increasing order for a bookmark never to skip a row: SQLite has one writer at a time,
and on PostgreSQL the writer takes a transaction-scoped advisory lock (see
`sync.ingest.inbox`).
"""

from __future__ import annotations

import sqlalchemy as sa

from sync.store.schema import Timestamp, metadata

MESSAGE_ID_MAX = 100
"""Segment's limit on `messageId` length."""

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(MESSAGE_ID_MAX), nullable=False, unique=True),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),  # tracking-api | webhook
    sa.Column("raw", sa.Text, nullable=False),  # the message as JSON, write key removed
    sqlite_autoincrement=True,  # never reuse an id after pruning
)
