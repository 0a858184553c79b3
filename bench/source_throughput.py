"""Source throughput: read a sample through the segment and warehouse sources.

Generates (or reuses) a sample of `--events` events in Segment's S3 layout and in a DuckDB
warehouse, then reads it once per source, each in its own child process, and prints per
source: events read, events/s of CPU time (per core: the measure of the target,
≥ 100k events/s/core for reading + validation), events/s of wall time, and the child's
peak RSS (from `wait4`, so one child's peak never hides another's).

    .venv/bin/python bench/source_throughput.py                    # 1M events
    .venv/bin/python bench/source_throughput.py --events 10000000  # RSS stays flat

The last line is `RESULT events_per_s=<int> peak_rss_mb=<int>`: the slower source's
CPU-time events/s and the larger peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _ensure_sample(folder: Path, events: int, seed: int, warehouse: bool) -> dict[str, object]:
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        loaded = manifest.get("warehouse_tables") is not None
        if (
            manifest.get("events") == events
            and manifest.get("seed") == seed
            and loaded >= warehouse
        ):
            print(f"reusing sample in {folder}", flush=True)
            return dict(manifest)
    print(f"generating {events:,} events in {folder} …", flush=True)
    started = time.perf_counter()
    # In a child: the parent must stay small, since a child's peak RSS starts at the
    # parent's RSS when it is forked.
    command = [sys.executable, __file__, "--child", "generate", "--dir", str(folder)]
    command += ["--events", str(events), "--seed", str(seed)]
    command += ["--sources", "segment,warehouse" if warehouse else "segment"]
    subprocess.run(command, check=True, cwd=ROOT)
    print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return dict(json.loads(manifest_path.read_text()))


def _warehouse_url(folder: Path) -> str:
    return f"duckdb:///{folder / 'warehouse.duckdb'}"


def _child(kind: str, folder: Path, args: argparse.Namespace) -> None:
    """Generate the sample, or read everything through one source (counts and times as JSON)."""
    batch_size = args.batch_size
    if kind == "generate":
        from connectors.sample import generate

        url = _warehouse_url(folder) if "warehouse" in args.sources else None
        generate(folder, events=args.events, seed=args.seed, warehouse_url=url)
        return
    if kind == "segment":
        from connectors.segment.settings import SegmentSourceSettings
        from connectors.segment.source import SegmentSource

        manifest = json.loads((folder / "manifest.json").read_text())
        path = str(folder / manifest["source_path"])
        source: object = SegmentSource(SegmentSourceSettings(path=path), name="bench")
    else:
        from connectors.warehouse.settings import WarehouseSourceSettings
        from connectors.warehouse.source import WarehouseSource

        source = WarehouseSource(WarehouseSourceSettings(url=_warehouse_url(folder)), name="bench")
    from sync.runtime import tune_gc

    tune_gc()  # as every `espbridge` command does
    cpu, wall = time.process_time(), time.perf_counter()
    messages = rejects = 0
    for batch in source.read(None, batch_size=batch_size):  # type: ignore[attr-defined]
        messages += len(batch.messages)
        rejects += len(batch.rejects)
    print(
        json.dumps(
            {
                "messages": messages,
                "rejects": rejects,
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.perf_counter() - wall,
            }
        )
    )


def _measure(kind: str, folder: Path, batch_size: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, "--dir", str(folder)]
    command += ["--batch-size", str(batch_size)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{kind} reader failed with exit code {child.returncode}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    events = result["messages"] + result["rejects"]
    result["events"] = events
    result["events_per_cpu_s"] = events / result["cpu_s"]
    result["events_per_wall_s"] = events / result["wall_s"]
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None, help="sample folder (reused)")
    parser.add_argument(
        "--sources",
        default="segment,warehouse",
        help="comma-separated: segment, warehouse (segment alone skips the DuckDB load)",
    )
    parser.add_argument(
        "--child", choices=["generate", "segment", "warehouse"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    folder = args.dir or ROOT / ".espbridge" / f"bench-sample-{args.events}-{args.seed}"
    if args.child:
        _child(args.child, folder, args)
        return
    kinds = [k for k in args.sources.split(",") if k]
    manifest = _ensure_sample(folder, args.events, args.seed, "warehouse" in kinds)
    results = {kind: _measure(kind, folder, args.batch_size) for kind in kinds}
    print(f"\nsample: {manifest['lines']:,} lines, {len(manifest['files'])} files", flush=True)  # type: ignore[arg-type]
    print(f"{'source':<10} {'events':>11} {'ev/s (cpu)':>11} {'ev/s (wall)':>11} {'peak RSS':>9}")
    for kind, r in results.items():
        print(
            f"{kind:<10} {int(r['events']):>11,} {int(r['events_per_cpu_s']):>11,} "
            f"{int(r['events_per_wall_s']):>11,} {r['peak_rss_mb']:>6.0f} MB"
        )
    load = os.getloadavg()[0]
    print(
        f"(cores: {os.cpu_count()}, load average {load:.1f}; parent RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )
    slowest = min(r["events_per_cpu_s"] for r in results.values())
    largest = max(r["peak_rss_mb"] for r in results.values())
    print(f"RESULT events_per_s={int(slowest)} peak_rss_mb={int(largest)}")


if __name__ == "__main__":
    main()
