"""CPU benchmark of the pipeline without network: parse → identity → mapping → fallback.

Generates (or reuses) a sample dataset with `connectors.sample.generate` (a small
built-in generator when it is unavailable), streams its lines in batches, and times each
stage separately on one core. Identity runs against a real SQLite state store on disk.

    .venv/bin/python bench/pipeline_cpu.py --events 1000000
    .venv/bin/python bench/pipeline_cpu.py --events 100000 --stages parse,identity

Add a stage by appending a `Stage` to `STAGES` (e.g. `triggers`, after identity): it
gets each `Batch` and may read `messages`/`customers` and fill its own fields.
The last line is `RESULT events_per_s=<whole pipeline> peak_rss_mb=<peak RSS>`.
Per-stage CPU time includes the garbage collections a stage triggers. The process runs
with the collector settings every `espbridge` command uses (`sync.runtime.tune_gc`);
`--default-gc` measures with Python's defaults instead.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import resource
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import Customer
from mapping.fields import FallbackCounter, FieldSpec, Resolved, resolver_for
from mapping.identity import IdentitySettings
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow
from mapping.validate import check_email, check_klaviyo_metric, reject
from sync.identity import IdentityResolver
from sync.runtime import tune_gc
from sync.store.state import StateStore
from sync.triggers import TriggerEngine, TriggerEngineSettings, TriggerSettings


@dataclass(slots=True)
class Batch:
    """What flows between stages for one batch of input lines."""

    lines: list[tuple[bytes, str]]
    messages: list[Message] = field(default_factory=list)
    customers: dict[str, Customer] = field(default_factory=dict)
    resolved: list[tuple[Message, Resolved]] = field(default_factory=list)
    rejects: list[RejectedRow] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Stage:
    """A named step over a batch; `seconds` accumulates its CPU time (this process).

    CPU time, not wall time, so figures mean "per core" even on a busy machine.
    """

    name: str
    run: Callable[[Batch], None]
    seconds: float = 0.0


# The track_event mapping of a Klaviyo-like destination: paths, transforms, fallbacks.
EVENT_FIELDS = {
    name: FieldSpec.model_validate(spec)
    for name, spec in {
        "email": {"path": ["context.traits.email", "traits.email"], "transform": ["trim", "lower"]},
        "external_id": {"path": "userId"},
        "anonymous_id": {"path": "anonymousId"},
        "metric": {"path": ["event", "name"], "fallback": "Page Viewed", "required": True},
        "unique_id": {"path": "messageId", "required": True},
        "time": {"path": "timestamp", "transform": "iso8601", "required": True},
        "value": {"path": ["properties.revenue", "properties.value", "properties.price"]},
        "value_minor": {
            "path": ["properties.revenue", "properties.price"],
            "transform": "minor_units",
        },
        "currency": {"path": "properties.currency", "fallback": "USD"},
        "product_name": {"path": ["properties.name", "properties.products[0].name"]},
        "product_url": {
            "path": ["properties.url", "context.page.url"],
            "transform": "truncate:500",
        },
        "first_name": {
            "path": ["context.traits.first_name", "traits.first_name"],
            "fallback": "there",
        },
        "day": {"path": "timestamp", "transform": "date:%Y-%m-%d"},
    }.items()
}


def make_stages(store: StateStore, settings: IdentitySettings) -> list[Stage]:
    """The pipeline's stages, in order."""
    resolver = IdentityResolver(store, settings)
    counter = FallbackCounter()
    resolve_event = resolver_for(EVENT_FIELDS)  # `resolve(EVENT_FIELDS, …)`, compiled once

    def parse(batch: Batch) -> None:
        for line, ref in batch.lines:
            try:
                batch.messages.append(parse_message(orjson.loads(line), ref))
            except orjson.JSONDecodeError as exc:
                batch.rejects.append(RejectedRow(ref, None, f"not JSON: {exc}"))
            except MessageError as exc:
                batch.rejects.append(RejectedRow(ref, exc.field, exc.reason))

    def identity(batch: Batch) -> None:
        batch.customers = resolver.resolve_batch(batch.messages)

    def mapping(batch: Batch) -> None:
        for message in batch.messages:
            batch.resolved.append((message, resolve_event(message.raw)))

    def fallback(batch: Batch) -> None:
        for message, resolved in batch.resolved:
            counter.add(resolved)
            problems = check_klaviyo_metric(resolved.values.get("metric"), "metric")
            if "email" in resolved.values:
                problems += check_email(resolved.values["email"])
            batch.rejects += resolved.rejects(message.source_ref)
            batch.rejects += reject(message.source_ref, problems, destination="bench")
        batch.extra["fallbacks"] = counter

    return [
        Stage("parse", parse),
        Stage("identity", identity),
        triggers_stage(store),
        Stage("mapping", mapping),
        Stage("fallback", fallback),
    ]


STAGES: list[str] = ["parse", "identity", "triggers", "mapping", "fallback"]
"""Default stage order."""

SEED_TRIGGERS = Path(__file__).resolve().parent.parent / "config.example.toml"


def triggers_stage(store: StateStore) -> Stage:
    """The trigger engine over the seed triggers, on the same SQLite store.

    Observes each batch, decides what the event-time watermark passed, and marks the
    emissions delivered. The wall clock follows the data (the batch's latest event), so
    freshness behaves as in a live sync rather than a backfill.
    """
    seeds = tomllib.loads(SEED_TRIGGERS.read_text(encoding="utf-8"))
    now = [datetime(2000, 1, 1, tzinfo=UTC)]
    engine = TriggerEngine(
        store,
        [TriggerSettings.model_validate(t) for t in seeds["triggers"]],
        TriggerEngineSettings.model_validate(seeds["trigger_engine"]),
        clock=lambda: now[0],
    )

    def run(batch: Batch) -> None:
        if batch.messages:
            now[0] = max(now[0], max(m.timestamp for m in batch.messages))
        engine.observe(batch.messages, batch.customers)
        emissions = engine.due()
        engine.mark([e.instance_id for e in emissions], "delivered")
        batch.extra["triggers"] = engine.decisions_summary()

    return Stage("triggers", run)


# input ---------------------------------------------------------------------------------


def builtin_lines(events: int, seed: int, people: int | None = None) -> Iterator[tuple[bytes, str]]:
    """A small deterministic generator, used when `connectors.sample` is unavailable, or
    to size the identity graph (`--people 1000000`: a million customers)."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    people = people or max(50, events // 40)
    for n in range(events):
        person = rng.randrange(people)
        kind = rng.choice(("track", "track", "track", "page", "identify"))
        raw: dict[str, Any] = {
            "type": kind,
            "messageId": f"{seed}-{n}",
            "timestamp": (start + timedelta(seconds=n * 3)).isoformat(),
            "anonymousId": f"anon-{person}-{rng.randrange(3)}",
        }
        if rng.random() < 0.6:
            raw["userId"] = f"user-{person}"
        traits = {"email": f"p{person}@example.com", "first_name": f"P{person}"}
        if kind == "track":
            raw["event"] = rng.choice(("Product Viewed", "Product Added", "Order Completed"))
            raw["properties"] = {"product_id": f"p-{rng.randrange(100)}", "price": 19.5}
            raw["context"] = {"traits": traits if rng.random() < 0.3 else {}}
        elif kind == "identify":
            raw["traits"] = traits
        yield orjson.dumps(raw), f"builtin:{n + 1}"


def sample_lines(events: int, seed: int, data_dir: Path) -> Iterator[tuple[bytes, str]]:
    """Lines of `connectors.sample` data (generated once into `data_dir`)."""
    from connectors.sample import generate

    folder = data_dir / f"sample-{events}-{seed}"
    if not (folder / "manifest.json").exists():
        started = time.perf_counter()
        generate(folder, events=events, seed=seed)
        print(f"generated {events} events in {time.perf_counter() - started:.1f}s into {folder}")
    for file in sorted(folder.rglob("*.gz")):
        with gzip.open(file, "rb") as handle:
            for number, line in enumerate(handle, 1):
                yield line, f"{file.name}:{number}"


def batches(lines: Iterator[tuple[bytes, str]], size: int) -> Iterator[list[tuple[bytes, str]]]:
    """Lines in lists of `size`."""
    chunk: list[tuple[bytes, str]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def store_counts(store: StateStore) -> dict[str, int]:
    """Rows of the identity graph's tables (what the store holds, not memory)."""
    with store.engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
            for name in ("identity_customers", "identity_identifiers")
        }


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print per-stage throughput."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--generator", choices=("sample", "builtin"), default="sample")
    parser.add_argument(
        "--people",
        type=int,
        default=None,
        help="builtin generator only: distinct people (default events/40); e.g. 1000000 "
        "shows the graph of a million customers stays in the store, not in memory",
    )
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "espbridge-bench"))
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="Python's default collector settings instead of espbridge's (`tune_gc`: "
        "freeze start-up objects, larger first generation).",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="espbridge-bench-"))
    store = StateStore.open(f"sqlite:///{work / 'state.db'}")
    available = {s.name: s for s in make_stages(store, IdentitySettings())}
    stages = [available[name] for name in args.stages.split(",")]
    if args.generator == "sample":
        try:
            import connectors.sample  # noqa: F401  (the generator is lazy: probe it here)

            lines = sample_lines(args.events, args.seed, Path(args.data_dir))
        except ImportError:
            lines = builtin_lines(args.events, args.seed)
    else:
        lines = builtin_lines(args.events, args.seed, args.people)

    if not args.default_gc:
        gc.collect()
        tune_gc()  # as every `espbridge` command does
    read = messages = rejects = 0
    read_seconds = 0.0
    started = time.perf_counter()
    source = batches(lines, args.batch_size)
    while True:
        t0 = time.process_time()
        chunk = next(source, None)
        read_seconds += time.process_time() - t0
        if chunk is None:
            break
        batch = Batch(chunk)
        for stage in stages:
            t0 = time.process_time()
            stage.run(batch)
            stage.seconds += time.process_time() - t0
        read += len(chunk)
        messages += len(batch.messages)
        rejects += len(batch.rejects)
    wall = time.perf_counter() - started
    graph = store_counts(store)
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    if "triggers" in batch.extra:
        print("trigger decisions:", batch.extra["triggers"])

    print(f"lines={read} messages={messages} rejects={rejects} batch={args.batch_size}")
    print(f"{'stage':<10} {'seconds':>9} {'events/s/core':>14}")
    print(f"{'read+gunzip':<10} {read_seconds:>9.2f} {read / max(read_seconds, 1e-9):>14,.0f}")
    for stage in stages:
        print(f"{stage.name:<10} {stage.seconds:>9.2f} {read / max(stage.seconds, 1e-9):>14,.0f}")
    pipeline = sum(s.seconds for s in stages)
    rate = read / max(pipeline, 1e-9)
    if any(s.name == "triggers" for s in stages) and len(stages) > 1:
        # Issue #6's budget covers the other stages; #7 puts triggers inside it too.
        others = pipeline - sum(s.seconds for s in stages if s.name == "triggers")
        print(f"{'w/o trig.':<10} {others:>9.2f} {read / max(others, 1e-9):>14,.0f}")
    print(f"{'pipeline':<10} {pipeline:>9.2f} {rate:>14,.0f}  (CPU s; wall {wall:.1f}s)")
    print("identity graph in the store: " + ", ".join(f"{k} {v:,}" for k, v in graph.items()))
    print(f"RESULT events_per_s={read / max(pipeline, 1e-9):.0f} peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
