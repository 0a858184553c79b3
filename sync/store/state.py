"""The state store: bookmarks, the sent-ledger, rejected rows, run records and locks.

Bookmarks are plain JSON-able dicts (dlt style). A bookmark advances only in the same
transaction that records what the destinations acknowledged for the batch before it
(`commit_batch`), so a run killed at any instant resends nothing acknowledged and skips
nothing unacknowledged. SQLite (WAL) by default, PostgreSQL by URL, the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors.base import Bookmark, Outcome, OutcomeStatus
from mapping.types import RejectedRow
from sync.redact import redact, redact_text, url_secrets
from sync.store import schema
from sync.store.migrations import migrate

_CHUNK = 500


ABANDONED = (
    "abandoned: the process ended without closing this run (killed, or stopped by a "
    "second signal); what it committed stays, the next run read on from there"
)


def _now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # SQLite's default page cache is 2 MB; the trigger and identity indexes of a million
    # events are far larger, and every insert would read its B-tree pages again.
    cursor.execute("PRAGMA cache_size=-65536")
    # A checkpoint copies each page changed since the last one back into the database.
    # Batches rewrite the same hot index pages over and over, so checkpointing every
    # 40 MB of WAL instead of SQLite's 4 MB copies those pages once instead of ten
    # times (a quarter less written by the trigger and identity stages).
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def create_engine(url: str) -> sa.Engine:
    """An engine for the state store; SQLite files get WAL and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect)
    return engine


@dataclass(slots=True)
class BatchCommit:
    """Everything one batch changes, written in one transaction by `commit_batch`."""

    run_id: int
    sync: str
    source: str
    bookmark: Bookmark | None
    outcomes: Sequence[tuple[str, Outcome]] = ()
    rejects: Sequence[RejectedRow] = ()
    counts: Mapping[str, int] = field(default_factory=dict)


class StateStore:
    """The one writer of espbridge's state (only `sync` uses it)."""

    def __init__(self, engine: sa.Engine, *, secrets: Iterable[str] = ()) -> None:
        self.engine = engine
        # Run errors come from drivers, ESPs and sources, which may echo a URL or a key:
        # they are redacted here, whoever writes them (`redact_text`).
        self.secrets = frozenset(secrets) | url_secrets(
            engine.url.render_as_string(hide_password=False)
        )

    @classmethod
    def open(cls, url: str, *, secrets: Iterable[str] = ()) -> StateStore:
        """Connect, and create or upgrade the schema.

        Args:
            url: SQLAlchemy URL of the store.
            secrets: Configured secret values, masked as `[secure]` in stored run errors.
        """
        engine = create_engine(url)
        migrate(engine)
        return cls(engine, secrets=secrets)

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.engine.dispose()

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows, replacing those whose primary key exists (SQLite and PostgreSQL)."""
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        dialect = self.engine.dialect.name
        stmt: Any = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)

    # bookmarks -------------------------------------------------------------------------

    def get_bookmark(self, sync: str, source: str) -> Bookmark | None:
        """The bookmark of a sync's source, or None before its first batch."""
        t = schema.bookmarks
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.bookmark).where(t.c.sync == sync, t.c.source == source)
            ).first()
        return dict(row[0]) if row else None

    # sent-ledger ------------------------------------------------------------------------

    def ledger_status(self, destination: str, keys: Iterable[str]) -> dict[str, str]:
        """Ledger status (`pending` or `acknowledged`) of each key that has one."""
        t = schema.sent_ledger
        found: dict[str, str] = {}
        key_list = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            for start in range(0, len(key_list), _CHUNK):
                chunk = key_list[start : start + _CHUNK]
                query = sa.select(t.c.key, t.c.status).where(
                    t.c.destination == destination, t.c.key.in_(chunk)
                )
                found.update({k: s for k, s in conn.execute(query)})
        return found

    def mark_pending(
        self, run_id: int, sync: str, destination: str, records: Iterable[Any]
    ) -> None:
        """Record intent before sending to a destination without idempotency keys."""
        rows = [
            {
                "destination": destination,
                "key": r.key,
                "action": r.action,
                "status": "pending",
                "sync": sync,
                "run_id": run_id,
                "source_ref": r.source_ref[:1000],
                "acknowledged_at": None,
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            self.upsert(conn, schema.sent_ledger, rows)

    # batches ----------------------------------------------------------------------------

    def commit_batch(self, batch: BatchCommit) -> None:
        """Record a batch's outcomes and rejects, and advance the bookmark, atomically."""
        now = _now()
        acked = [
            {
                "destination": dest,
                "key": o.key,
                "action": o.record.action,
                "status": "acknowledged",
                "sync": batch.sync,
                "run_id": batch.run_id,
                "source_ref": o.record.source_ref[:1000],
                "acknowledged_at": now,
            }
            for dest, o in batch.outcomes
            if o.status is OutcomeStatus.ACKNOWLEDGED
        ]
        rejects = [self._reject_row(batch, r, now) for r in batch.rejects]
        with self.engine.begin() as conn:
            self.upsert(conn, schema.sent_ledger, acked)
            if rejects:
                conn.execute(sa.insert(schema.rejected_rows), rejects)
            if batch.bookmark is not None:
                self.upsert(
                    conn,
                    schema.bookmarks,
                    [
                        {
                            "sync": batch.sync,
                            "source": batch.source,
                            "bookmark": batch.bookmark,
                            "updated_at": now,
                        }
                    ],
                )
            if batch.counts:
                self._add_counts(conn, batch.run_id, batch.counts)

    def _reject_row(self, batch: BatchCommit, r: RejectedRow, now: datetime) -> dict[str, Any]:
        # An ESP's or a driver's reason may echo a key or a connection URL it was given.
        return {
            "run_id": batch.run_id,
            "sync": batch.sync,
            "stage": r.stage,
            "destination": r.destination,
            "source_ref": r.source_ref[:1000],
            "key": r.key,
            "field": r.field,
            "reason": redact_text(r.reason, self.secrets),
            "payload": redact(dict(r.payload)),
            "created_at": now,
            "retried_at": None,
        }

    def _add_counts(self, conn: sa.Connection, run_id: int, counts: Mapping[str, int]) -> None:
        t = schema.runs
        current = conn.execute(sa.select(t.c.counts).where(t.c.id == run_id)).scalar_one()
        merged = dict(current or {})
        for name, value in counts.items():
            merged[name] = merged.get(name, 0) + value
        conn.execute(sa.update(t).where(t.c.id == run_id).values(counts=merged))

    # runs -------------------------------------------------------------------------------

    def start_run(self, sync: str, *, dry_run: bool = False) -> int:
        """Open a run record; return its id."""
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.insert(schema.runs).values(
                    sync=sync,
                    started_at=_now(),
                    status="running",
                    dry_run=dry_run,
                    counts={},
                    api_calls={},
                    errors=[],
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def abandon_runs(self, sync: str) -> int:
        """Close as failed the run records of `sync` still `running`; return how many.

        Call holding the sync's lock: no run of it is live then, so such a record belongs
        to a process that ended without closing it (killed, out of memory, or stopped by
        a second signal), and would otherwise show `running` for ever.
        """
        t = schema.runs
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(t)
                .where(t.c.sync == sync, t.c.status == "running")
                .values(status="failed", ended_at=_now(), errors=[ABANDONED])
            )
        return int(result.rowcount)

    def discard_run(self, run_id: int) -> None:
        """Delete a run record that says nothing (an idle tick of `serve`'s worker)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(schema.runs).where(schema.runs.c.id == run_id))

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        api_calls: Mapping[str, int] | None = None,
        errors: Sequence[str] = (),
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Close a run record with its final status, API call counts and errors.

        Errors are stored redacted (`sync.redact.redact_text`): no URL password, no secret
        query value, no configured secret.
        """
        with self.engine.begin() as conn:
            if counts:
                self._add_counts(conn, run_id, counts)
            conn.execute(
                sa.update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(
                    ended_at=_now(),
                    status=status,
                    api_calls=dict(api_calls or {}),
                    errors=[redact_text(str(error), self.secrets) for error in errors],
                )
            )

    def runs(self, *, sync: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest run records, newest first."""
        t = schema.runs
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if sync:
            query = query.where(t.c.sync == sync)
        with self.engine.connect() as conn:
            return [self._row(r._mapping) for r in conn.execute(query)]

    def rejects(
        self,
        *,
        sync: str | None = None,
        run_id: int | None = None,
        include_retried: bool = False,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Rejected rows, newest first."""
        t = schema.rejected_rows
        query = sa.select(t).order_by(t.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if sync:
            query = query.where(t.c.sync == sync)
        if run_id is not None:
            query = query.where(t.c.run_id == run_id)
        if not include_retried:
            query = query.where(t.c.retried_at.is_(None))
        with self.engine.connect() as conn:
            return [self._row(r._mapping) for r in conn.execute(query)]

    def mark_retried(self, ids: Iterable[int]) -> None:
        """Mark rejected rows as retried (they stay in the ledger for audit)."""
        id_list = list(ids)
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(schema.rejected_rows)
                .where(schema.rejected_rows.c.id.in_(id_list))
                .values(retried_at=_now())
            )

    @staticmethod
    def _row(mapping: Mapping[Any, Any]) -> dict[str, Any]:
        return {str(k): as_utc(v) if isinstance(v, datetime) else v for k, v in mapping.items()}

    # locks ------------------------------------------------------------------------------

    def acquire_lock(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take a named lock unless another live holder has it (works across processes).

        An expired lock (its holder died) is taken over. Expiry is written and compared
        on the database's clock, never this host's (see `_db_clock`).
        """
        t = schema.locks
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.name == name, t.c.expires_at < self._db_clock()))
            try:
                with conn.begin_nested():
                    conn.execute(
                        sa.insert(t).values(
                            name=name, holder=holder, expires_at=self._db_clock(ttl)
                        )
                    )
                return True
            except sa.exc.IntegrityError:
                current = conn.execute(sa.select(t.c.holder).where(t.c.name == name)).scalar()
                return current == holder

    def refresh_lock(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Extend a held lock; False if it is no longer ours."""
        t = schema.locks
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(t)
                .where(t.c.name == name, t.c.holder == holder)
                .values(expires_at=self._db_clock(ttl))
            )
        return result.rowcount == 1

    def _db_clock(self, offset: timedelta = timedelta(0)) -> sa.ColumnElement[Any]:
        """The database's current UTC time plus `offset`, computed in SQL.

        Hosts sharing a PostgreSQL store may disagree about the time: with expiry from
        each client's clock, a host running ahead sees a live lock as expired and takes
        it. One clock, the server's, decides for all of them. SQLite's is this host's, in
        the text format SQLAlchemy stores its timestamps in (UTC, compared as text).
        """
        if self.engine.dialect.name == "sqlite":
            shift = f"{offset.total_seconds():+.6f} seconds"
            return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now", shift)
        return sa.func.now() + sa.literal(offset, sa.Interval())

    def release_lock(self, name: str, holder: str) -> None:
        """Give a lock back."""
        t = schema.locks
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.name == name, t.c.holder == holder))

    def iter_table(self, table: sa.Table, *, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Stream a table's rows without loading it whole."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                sa.select(table)
            )
            for row in result:
                yield self._row(row._mapping)
