"""State store growth: bytes per sent-ledger key on SQLite, and what retention costs.

Writes `--rows` acknowledged keys through the real code path (`StateStore.commit_batch`,
one batch of `--batch` keys per transaction, keys shaped like Klaviyo `unique_id`s) into
two SQLite stores: one with the retention index on `acknowledged_at`, one without it.
Then it prunes the older half of the indexed store in chunks (`sync.store.retention`).

    .venv/bin/python bench/state_growth.py --rows 1000000

Prints bytes per key (table + primary key, and the index), the time to insert with and
without the index, the longest single prune transaction (how long the write lock is
held), the prune rate, and how long an upgrade takes to index an existing ledger. The last line is
`RESULT bytes_per_row=… index_bytes_per_row=… insert_cost_ratio=… prune_rows_per_s=…
max_chunk_ms=…`.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import Outcome, OutcomeStatus, Record
from sync.store import retention
from sync.store.state import BatchCommit, StateStore

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Written:
    seconds: float
    file_bytes: int
    table_bytes: int
    index_bytes: int


def _outcomes(start: int, count: int) -> list[tuple[str, Outcome]]:
    out = []
    for i in range(start, start + count):
        key = str(uuid.UUID(int=i * 2654435761 % (1 << 128)))  # spread like real ids
        record = Record(
            action="track_event",
            key=key,
            fields={},
            event_time=START,
            source_ref=f"segment-logs/src/1767225600000/part-{i // 100000:05d}.gz:{i % 100000}",
        )
        out.append(("klaviyo", Outcome(key=key, status=OutcomeStatus.ACKNOWLEDGED, record=record)))
    return out


def _open(path: Path, *, index: bool) -> StateStore:
    store = StateStore.open(f"sqlite:///{path}")
    if not index:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_sent_ledger_acknowledged_at")
    return store


def _write(paths: tuple[Path, Path], rows: int, batch: int) -> tuple[Written, Written]:
    """Write the same keys without and with the index, batch by batch in turn, so that
    whatever else loads the machine meanwhile weighs on both alike."""
    stores = (_open(paths[0], index=False), _open(paths[1], index=True))
    runs = [store.start_run("bench") for store in stores]
    elapsed = [0.0, 0.0]
    for start in range(0, rows, batch):
        outcomes = _outcomes(start, min(batch, rows - start))
        for n, store in enumerate(stores):
            began = time.perf_counter()
            store.commit_batch(BatchCommit(runs[n], "bench", "src", None, outcomes))
            elapsed[n] += time.perf_counter() - began
    for store in stores:
        with store.engine.begin() as conn:
            # Spread the acknowledgements over one day, oldest first, for the prune.
            conn.exec_driver_sql(
                "UPDATE sent_ledger SET acknowledged_at = "
                f"strftime('%Y-%m-%d %H:%M:%f', '{START:%Y-%m-%d %H:%M:%S}', "
                f"(rowid * 86400.0 / {rows}) || ' seconds')"
            )
        store.close()
    plain, indexed = (Written(elapsed[n], *_sizes(paths[n])) for n in range(2))
    return plain, indexed


def _sizes(path: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    con.close()
    table = sizes.get("sent_ledger", 0) + sizes.get("sqlite_autoindex_sent_ledger_1", 0)
    return path.stat().st_size, table, sizes.get("ix_sent_ledger_acknowledged_at", 0)


def _build_index(path: Path) -> float:
    """Seconds the upgrade's migration step takes to index an existing ledger."""
    store = StateStore.open(f"sqlite:///{path}")
    began = time.perf_counter()
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE INDEX ix_sent_ledger_acknowledged_at ON sent_ledger (acknowledged_at)"
        )
    seconds = time.perf_counter() - began
    store.close()
    return seconds


def _prune(path: Path, chunk: int) -> tuple[int, float, float]:
    """Prune the older half; (rows deleted, seconds, longest chunk in ms)."""
    store = StateStore.open(f"sqlite:///{path}")
    longest = 0.0
    total = 0
    began = time.perf_counter()
    # Chunk by chunk through the same code as `prune`, timing each transaction.
    while True:
        tick = time.perf_counter()
        pruned = retention.prune(
            store,
            retention.Retention(sent_ledger_days=1),
            now=START + timedelta(days=1.5),
            chunk=chunk,
            budget_s=0.0,  # one chunk per call
        )
        longest = max(longest, (time.perf_counter() - tick) * 1000)
        deleted = pruned.counts["sent_ledger"]
        total += deleted
        if deleted < chunk:
            break
    seconds = time.perf_counter() - began
    store.close()
    return total, seconds, longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=retention.CHUNK)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="espbridge-state-growth-") as tmp:
        plain, indexed = _write(
            (Path(tmp) / "plain.db", Path(tmp) / "indexed.db"), args.rows, args.batch
        )
        deleted, seconds, longest = _prune(Path(tmp) / "indexed.db", args.chunk)
        upgrade = _build_index(Path(tmp) / "plain.db")
    per_row = plain.table_bytes / args.rows
    index_per_row = indexed.index_bytes / args.rows
    ratio = indexed.seconds / plain.seconds
    rate = deleted / seconds if seconds else 0.0
    print(f"rows written: {args.rows:,} in batches of {args.batch:,}")
    print(
        f"file: {plain.file_bytes / args.rows:.0f} B/key without the index, "
        f"{indexed.file_bytes / args.rows:.0f} B/key with it"
    )
    print(
        f"sent_ledger table + primary key: {per_row:.0f} B/key; "
        f"acknowledged_at index: {index_per_row:.0f} B/key"
    )
    print(
        f"insert: {plain.seconds:.1f} s without the index, {indexed.seconds:.1f} s with it "
        f"(x{ratio:.2f})"
    )
    print(
        f"prune: {deleted:,} keys in {seconds:.1f} s ({rate:,.0f}/s), "
        f"longest chunk of {args.chunk:,}: {longest:.0f} ms"
    )
    print(f"upgrade: indexing the existing {args.rows:,} keys took {upgrade:.1f} s")
    print(
        f"RESULT bytes_per_row={per_row:.0f} index_bytes_per_row={index_per_row:.0f} "
        f"insert_cost_ratio={ratio:.2f} prune_rows_per_s={rate:.0f} max_chunk_ms={longest:.0f}"
    )


if __name__ == "__main__":
    main()
