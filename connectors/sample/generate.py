"""`generate`: a deterministic, realistic e-commerce dataset in Segment spec.

Sessions are drawn one after another along a 45-day timeline and written as they are
drawn (constant memory, whatever the size); planted stories are merged in by received
time. The same seed gives byte-identical files.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.sample.catalog import BASE_MS, DAY_MS, SPAN_DAYS, iso
from connectors.sample.layout import SegmentLayoutWriter
from connectors.sample.sessions import RANDOM_FIRST_CUSTOMER, Event, Ledger, SessionMaker
from connectors.sample.stories import Stories
from connectors.sample.warehouse import WarehouseStage

__all__ = ["generate"]

MIN_EVENTS = 200
EVENTS_PER_SESSION = 5.2
MALFORMED = ("bad_json", "missing_message_id", "bad_timestamp")


def _source_id(seed: int) -> str:
    rng = random.Random(seed ^ 0x5E6)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(10))


def _malformed(kind: str, msg: dict[str, Any]) -> bytes:
    if kind == "bad_json":
        line = orjson.dumps(msg)
        return line[: len(line) // 2]
    bad = dict(msg)
    if kind == "missing_message_id":
        del bad["messageId"]
    else:
        bad["timestamp"] = "31/02/2026 25:61"
    return orjson.dumps(bad)


class _Run:
    """One generation: the writer, the optional warehouse stage, and the counters."""

    def __init__(self, out_dir: Path, seed: int, warehouse: bool) -> None:
        self.rng = random.Random(seed)
        self.source_id = _source_id(seed)
        self.writer = SegmentLayoutWriter(out_dir, self.source_id)
        self.stage = WarehouseStage() if warehouse else None
        self.ledger = Ledger()
        self.lines = 0
        self.recent: list[bytes] = []

    def emit(self, event: Event, special: str | None = None, may_repeat: bool = True) -> str:
        _, received, msg = event
        if special in MALFORMED:
            ref = self.writer.write(_malformed(special, msg), received)
            self.ledger.note("malformed", {"ref": ref, "kind": special})
            self.lines += 1
            return ref
        line = orjson.dumps(msg)
        ref = self.writer.write(line, received)
        self.lines += 1
        if self.stage is not None:
            self.stage.add(msg, line)
        if special == "duplicate" or (may_repeat and special is None and self.rng.random() < 0.002):
            self.writer.write(line, received)
            self.lines += 1
            self.ledger.note("duplicates", {"message_id": msg["messageId"], "ref": ref})
        return ref

    def emit_random(self, event: Event) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.0006:
            self.emit(event, MALFORMED[rng.randrange(3)])
            return
        if roll < 0.0036:
            ts, received, msg = event
            received += rng.randrange(DAY_MS, 3 * DAY_MS)
            msg["receivedAt"] = iso(received)
            event = (ts, received, msg)
            self.ledger.note("late", {"message_id": msg["messageId"]})
        self.emit(event)


def _shift_back(events: list[Event], shift: int) -> list[Event]:
    """A phone that was offline: events happened hours before they were received."""
    moved = []
    for ts, received, msg in events:
        msg["timestamp"] = iso(ts - shift)
        msg["originalTimestamp"] = iso(ts - shift - 120)
        moved.append((ts - shift, received, msg))
    return moved


def generate(
    out_dir: str | Path,
    events: int = 10_000,
    seed: int = 1,
    warehouse_url: str | None = None,
    *,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Write a sample dataset; return (and write) its manifest.

    Args:
        out_dir: Output folder; files go to `segment-logs/<source-id>/<day-ms>/<n>.gz`.
        events: Number of lines to write (messages, duplicates and malformed lines).
        seed: Seed of every random choice; the same seed gives the same bytes.
        warehouse_url: `duckdb:///file.duckdb` (or a path) to also load Segment's
            warehouse tables there.
        end: Make the dataset's 45 days end at this time (e.g. now, so that triggers,
            whose freshness is measured against the wall clock, have recent carts).
            Default: a fixed date chosen by the seed, so the same seed gives the same bytes.

    Returns:
        The manifest (also written to `out_dir/manifest.json`).
    """
    if events < MIN_EVENTS:
        raise ValueError(f"events: at least {MIN_EVENTS} (the planted stories need room)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, seed, warehouse_url is not None)
    start = BASE_MS + random.Random(seed).randrange(28) * DAY_MS
    if end is not None:
        start = int(end.timestamp() * 1000) - SPAN_DAYS * DAY_MS
    customers = max(50, events // 40)
    maker = SessionMaker(run.rng, seed, customers, start, run.ledger)
    stories = Stories(maker, start)
    planted = stories.build(seed)
    budget = events - len(planted) - 1  # room for the planted duplicate line
    step = int(SPAN_DAYS * DAY_MS / max(budget / EVENTS_PER_SESSION, 1))
    clock, next_planted = start, 0
    while True:
        clock += run.rng.randrange(1, 2 * step)
        session = maker.session(clock)
        if run.lines + 2 * len(session) > budget:
            break
        while next_planted < len(planted) and planted[next_planted][1] <= clock:
            event = planted[next_planted]
            run.emit(event, stories.special.get(event[2]["messageId"]))
            next_planted += 1
        if run.rng.random() < 0.01:
            session = _shift_back(session, run.rng.randrange(3, 7) * 3_600_000)
        for event in session:
            run.emit_random(event)
        run.writer.close_before(clock)
    for event in planted[next_planted:]:
        run.emit(event, stories.special.get(event[2]["messageId"]))
    while run.lines < events:  # top up with single page views
        clock += run.rng.randrange(1, 2 * step)
        run.emit(maker.browse(RANDOM_FIRST_CUSTOMER, clock)[0], may_repeat=False)
    run.writer.close()
    return _finish(out, run, stories, seed, events, start, warehouse_url)


def _finish(
    out: Path,
    run: _Run,
    stories: Stories,
    seed: int,
    events: int,
    start: int,
    warehouse_url: str | None,
) -> dict[str, Any]:
    tables = run.stage.load(warehouse_url) if run.stage and warehouse_url else None
    manifest = {
        "seed": seed,
        "events": events,
        "lines": run.lines,
        "source_id": run.source_id,
        "source_path": f"segment-logs/{run.source_id}",
        "start": iso(start),
        "end": iso(start + 45 * DAY_MS),
        "files": run.writer.files,
        "planted": stories.planted,
        "counts": dict(sorted(run.ledger.counts.items())),
        "samples": dict(sorted(run.ledger.lists.items())),
        "warehouse_tables": tables,
    }
    (out / "manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    return manifest
