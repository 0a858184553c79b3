"""Writing accepted messages to the inbox, and refused ones to the rejects ledger.

A request may be answered once the transaction holding its messages commits. Requests
that arrive while a commit is running are committed together in the next one (group
commit: one writer, fewer transactions). A messageId already in the inbox is skipped
(the first copy wins).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sync.ingest.validate import InvalidMessage, ValidMessage
from sync.store import schema
from sync.store.inbox import inbox
from sync.store.state import StateStore, as_utc

INGEST_SYNC = "ingest"
"""The `sync` name of rows the ingest endpoint refuses (they belong to no sync yet)."""
INGEST_RUN_ID = 0
"""The `run_id` of those rows: they are refused before any run reads them."""
_PG_INBOX_LOCK = 0x65737062  # "espb": serialises inbox writers so ids commit in order


@dataclass(frozen=True, slots=True)
class InboxCommit:
    """What one request changed: messages stored, already present, and refused."""

    stored: int
    duplicates: int
    rejected: int


def reject_rows(
    invalid: Sequence[InvalidMessage], channel: str, now: datetime
) -> list[dict[str, Any]]:
    """Rows of the rejects ledger for refused messages."""
    return [
        {
            "run_id": INGEST_RUN_ID,
            "sync": INGEST_SYNC,
            "stage": "source",
            "destination": None,
            "source_ref": f"{channel}:{m.message_id or f'batch[{m.index}]'}"[:1000],
            "key": m.message_id,
            "field": m.field,
            "reason": m.reason,
            "payload": m.payload,
            "created_at": now,
            "retried_at": None,
        }
        for m in invalid
    ]


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """One request's messages, as handed to `InboxWriter.commit_many`."""

    valid: Sequence[ValidMessage]
    invalid: Sequence[InvalidMessage]
    channel: str
    received_at: datetime


class InboxWriter:
    """Commits requests' messages to the state store's inbox."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._postgres = store.engine.dialect.name == "postgresql"

    def commit(
        self,
        valid: Sequence[ValidMessage],
        invalid: Sequence[InvalidMessage],
        *,
        channel: str,
        received_at: datetime,
    ) -> InboxCommit:
        """Store valid messages and record refused ones, in one transaction."""
        return self.commit_many([InboxBatch(valid, invalid, channel, received_at)])[0]

    def commit_many(self, batches: Sequence[InboxBatch]) -> list[InboxCommit]:
        """Commit several requests in one transaction (the first copy of a messageId wins)."""
        rows: dict[str, dict[str, Any]] = {}
        owner: dict[str, int] = {}
        for n, batch in enumerate(batches):
            for m in batch.valid:
                if m.message_id not in rows:
                    owner[m.message_id] = n
                    rows[m.message_id] = {
                        "message_id": m.message_id,
                        "received_at": batch.received_at,
                        "channel": batch.channel,
                        "raw": m.raw,
                    }
        rejects = [row for b in batches for row in reject_rows(b.invalid, b.channel, b.received_at)]
        inserted: set[str] = set()
        with self.store.engine.begin() as conn:
            if self._postgres and rows:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_INBOX_LOCK)))
            if rows:
                inserted = self._insert(conn, list(rows.values()))
            if rejects:
                conn.execute(sa.insert(schema.rejected_rows), rejects)
        stored = Counter(owner[message_id] for message_id in inserted)
        return [
            InboxCommit(stored[n], len(b.valid) - stored[n], len(b.invalid))
            for n, b in enumerate(batches)
        ]

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
        insert: Any = pg_insert if self._postgres else sqlite_insert
        stmt = (
            insert(inbox)
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(inbox.c.message_id)
        )
        # The rows returned are the rows inserted (executemany rowcount is unreliable).
        return {str(row[0]) for row in conn.execute(stmt, rows)}

    def max_id(self) -> int:
        """The newest inbox id (0 when empty)."""
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(inbox.c.id))).scalar() or 0)


def _older(received_at: datetime, cutoff: datetime) -> bool:
    received = as_utc(received_at)  # SQLite hands back naive UTC
    return received is not None and received < cutoff


PRUNE_CHUNK = 5000
"""Inbox rows read, and at most deleted, per transaction of `prune_inbox`."""


def prune_inbox(
    store: StateStore, *, upto_id: int, received_before: datetime, chunk: int = PRUNE_CHUNK
) -> int:
    """Delete inbox rows every inbox sync has read (`id <= upto_id`) and that are older
    than `received_before`; return how many. Ids are never reused after pruning.

    Rows are read oldest first, `chunk` at a time, and the read stops at the first row
    still too young: ids follow arrival, so the rest are younger. One DELETE over the id
    range would read the whole retention window (a week of traffic) at every prune, and
    on SQLite hold the write lock meanwhile, so ingest would wait and answer 503. A row
    received out of order behind a younger one goes at the next prune.
    """
    deleted, after = 0, 0
    while after < upto_id:
        query = (
            sa.select(inbox.c.id, inbox.c.received_at)
            .where(inbox.c.id > after, inbox.c.id <= upto_id)
            .order_by(inbox.c.id)
            .limit(chunk)
        )
        with store.engine.connect() as conn:  # read apart: a write lock only to delete
            rows = conn.execute(query).all()
        old = [row.id for row in rows if _older(row.received_at, received_before)]
        if old:
            with store.engine.begin() as conn:
                result = conn.execute(
                    sa.delete(inbox).where(
                        inbox.c.id.between(old[0], old[-1]),
                        inbox.c.received_at < received_before,
                    )
                )
            deleted += int(result.rowcount)
        if len(old) < chunk:  # a row too young, or the end of what was read
            return deleted
        after = old[-1]
    return deleted
