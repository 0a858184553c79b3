"""The trigger journal: a batch's cancel and counted events, one row per kind.

Rows are keyed by a digest of their entries, so observing the same batch twice (a
crash before the batch commit) writes nothing new. Counted events carry the start
snapshot an instance needs should the event qualify later (a late event can complete
a window); cancel events are small.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import orjson
import sqlalchemy as sa

from sync.store.triggers import marks, trigger_journal
from sync.triggers.window import CancelEvent, CountEvent

CANCEL = "cancel"
COUNT = "count"


@dataclass(slots=True)
class Counted:
    """A counted event with its start snapshot (orjson bytes)."""

    event: CountEvent
    start: bytes


def journal_id(kind: str, keys: Sequence[tuple[str, ...]]) -> str:
    """Deterministic id of a journal row: the kind and its entries' identities."""
    digest = hashlib.blake2b(kind.encode(), digest_size=20)
    for key in sorted(keys):
        digest.update("\x1f".join(key).encode())
        digest.update(b"\x1e")
    return f"{kind[:2]}_{digest.hexdigest()}"


def _insert(
    conn: sa.Connection,
    jid: str,
    kind: str,
    times: list[int],
    blob: bytes,
    starts: bytes | None = None,
) -> None:
    sql = (
        f"INSERT INTO {trigger_journal.name} "
        "(journal_id, kind, min_time, max_time, entries, starts) "
        f"VALUES ({marks(conn, 6)}) ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, (jid, kind, min(times), max(times), blob, starts))


def write_cancels(conn: sa.Connection, events: Sequence[CancelEvent]) -> str | None:
    """Journal a batch's cancel events; their row's id (None when there are none)."""
    if not events:
        return None
    jid = journal_id(CANCEL, [(e[0], e[1], e[2], str(e[3]), e[4]) for e in events])
    _insert(conn, jid, CANCEL, [e[3] for e in events], orjson.dumps(events))
    return jid


def write_counts(conn: sa.Connection, counted: Sequence[Counted]) -> str | None:
    """Journal a batch's counted events with their starts; the row's id."""
    if not counted:
        return None
    keys = [(c.event[0], c.event[1], c.event[2], str(c.event[3]), c.event[4]) for c in counted]
    jid = journal_id(COUNT, keys)
    events = orjson.dumps([c.event for c in counted])
    starts = orjson.dumps([orjson.Fragment(c.start) for c in counted])  # in the same order
    _insert(conn, jid, COUNT, [c.event[3] for c in counted], events, starts)
    return jid


@dataclass(slots=True)
class Row:
    """One journal row, decoded on demand."""

    seq: int
    journal_id: str
    kind: str
    entries: bytes

    def cancels(self) -> list[CancelEvent]:
        """The row's cancel events."""
        return [cast(CancelEvent, (*e,)) for e in orjson.loads(self.entries)]

    def counts(self) -> list[CountEvent]:
        """The row's counted events."""
        return [cast(CountEvent, tuple(e)) for e in orjson.loads(self.entries)]


def rows_between(conn: sa.Connection, kind: str, lo: int, hi: int) -> list[Row]:
    """Journal rows of `kind` that may hold events with times in [lo, hi]."""
    sql = (
        f"SELECT seq, journal_id, kind, entries FROM {trigger_journal.name} "
        f"WHERE kind = {marks(conn, 1)} AND max_time >= {marks(conn, 1)} "
        f"AND min_time <= {marks(conn, 1)} ORDER BY seq"
    )
    return [Row(*r) for r in conn.exec_driver_sql(sql, (kind, lo, hi)).fetchall()]


def newer_ids(conn: sa.Connection, after: int) -> list[tuple[int, str]]:
    """(seq, journal id) of rows written after `after` (by anyone), in order."""
    sql = f"SELECT seq, journal_id FROM {trigger_journal.name} WHERE seq > {marks(conn, 1)}"
    return [(int(s), str(j)) for s, j in conn.exec_driver_sql(sql + " ORDER BY seq", (after,))]


def newest_seq(conn: sa.Connection) -> int:
    """The sequence number of the newest journal row (0 when there is none)."""
    found = conn.exec_driver_sql(f"SELECT MAX(seq) FROM {trigger_journal.name}").scalar()
    return int(found or 0)


def rows_by_id(conn: sa.Connection, ids: Sequence[str]) -> list[Row]:
    """Journal rows by id, in write order."""
    if not ids:
        return []
    sql = (
        f"SELECT seq, journal_id, kind, entries FROM {trigger_journal.name} "
        f"WHERE journal_id IN ({marks(conn, len(ids))}) ORDER BY seq"
    )
    return [Row(*r) for r in conn.exec_driver_sql(sql, tuple(ids)).fetchall()]


def start_in(conn: sa.Connection, jid: str, event: CountEvent) -> bytes | None:
    """The start snapshot of one counted event, from the journal row holding it."""
    sql = f"SELECT entries, starts FROM {trigger_journal.name} WHERE journal_id = {marks(conn, 1)}"
    for entries, starts in conn.exec_driver_sql(sql, (jid,)).fetchall():
        events = Row(0, jid, COUNT, entries).counts()
        if event in events and starts is not None:
            return orjson.dumps(orjson.loads(starts)[events.index(event)])
    return None


def prune(conn: sa.Connection, kind: str, before: int) -> None:
    """Delete rows of `kind` whose newest event is older than `before`."""
    sql = (
        f"DELETE FROM {trigger_journal.name} WHERE kind = {marks(conn, 1)} "
        f"AND max_time < {marks(conn, 1)}"
    )
    conn.exec_driver_sql(sql, (kind, before))
