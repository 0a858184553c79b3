"""Soak: does the always-on service grow? `espbridge serve` (and `schedule`) for minutes.

Starts the ESP sandbox and `espbridge serve` (the real command, with a config file) on
127.0.0.1 and, with `--schedule`, `espbridge schedule` running an every-minute cron over a
folder this script keeps adding files to; all share one SQLite state store. The official
segment-analytics-python client sends `--rate` events/s for `--minutes` (one in ten an
order, which an immediate trigger follows up). Every `--every` seconds it samples each
process's RSS, open file descriptors (/proc/<pid>/fd) and threads, the store's size (db and
WAL), the inbox's rows, the run records and the worker's lag (`/metrics`). Growth per hour
compares the mean of the first third of the samples taken after `--warmup` (6 minutes:
SQLite's page cache of each pooled connection fills up to 64 MB meanwhile) with the mean
of the last third. Every event sent must reach the sandbox's Klaviyo exactly once (its
request log is read as the soak goes, by Klaviyo `unique_id` = messageId). Last line:

    RESULT rss_mb_per_h=… fds_per_h=… exactly_once=yes|no

Usage: `.venv/bin/python bench/soak.py [--minutes 10] [--rate 200] [--every 15] [--schedule]`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from services import ROOT, free_port, spawn, unique_ids, wait_up

WRITE_KEY = "wk-soak"
TIME_SCALE = 1000  # the sandbox's rate windows, and the client's limiter, sped up alike
USERS = 2000  # distinct customers the traffic cycles through
ORDER_EVERY = 10  # one message in ten is an order, which fires the immediate trigger

CONFIG = """\
[state]
url = "sqlite:///{db}"

[ingest]
write_keys = ["{write_key}"]

[sources.web]
type = "inbox"

[sources.files]
type = "segment"
path = "{folder}"

[destinations.klaviyo]
type = "klaviyo"
api_key = "pk_soak_123456"
base_url = "{klaviyo}"
time_scale = {time_scale}

[syncs.realtime]
source = "web"
destinations = ["klaviyo"]
{files_sync}
[trigger_engine]
clock = "wall"
allowed_lateness = "0s"

[[triggers]]
name = "order_thanks"
on = "Order Completed"
priority = 100
freshness = "1h"

[triggers.emit]
event = "Order Thanks"
properties = {{ source_message_id = "messageId" }}
"""

FILES_SYNC = """
[syncs.files]
source = "files"
destinations = ["klaviyo"]
schedule = "* * * * *"
"""


# traffic ------------------------------------------------------------------------------


def _event(n: int) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """(userId, event, properties, context) of message n."""
    user = f"user-{n % USERS}"
    name = "Order Completed" if n % ORDER_EVERY == 0 else "Product Viewed"
    properties = {"sku": f"SKU-{n % 97}", "price": n % 50 + 1, "order_id": f"o-{n}"}
    return user, name, properties, {"traits": {"email": f"{user}@example.com"}}


@dataclass
class Traffic:
    """What was sent: messageIds the client queued, and those it reported failed."""

    queued: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    orders: int = 0

    def on_error(self, _exc: Exception, batch: list[dict[str, Any]]) -> None:
        """analytics-python gave these up (retries exhausted, queue full)."""
        self.failed.update(str(m.get("messageId")) for m in batch)

    def delivered(self) -> set[str]:
        return (self.queued - self.failed) | self.files


def drive(url: str, rate: int, seconds: float, traffic: Traffic) -> None:
    """Send `rate` events/s for `seconds` through the official Segment client."""
    from segment.analytics import Client

    client = Client(WRITE_KEY, host=url, on_error=traffic.on_error, max_queue_size=100_000)
    tick, n = 0.1, 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while n < due:
            user, name, properties, context = _event(n)
            mid = f"s{n}"
            ok, _msg = client.track(
                user, name, properties, context, datetime.now(UTC), message_id=mid
            )
            if ok:
                traffic.queued.add(mid)
                traffic.orders += name == "Order Completed"
            n += 1
        time.sleep(tick)
    client.flush()
    client.join()


def feed_folder(folder: Path, every: float, size: int, stop: threading.Event, t: Traffic) -> None:
    """Add a file of `size` Segment messages to `folder` every `every` seconds."""
    k = 0
    while not stop.wait(every):
        lines = []
        for i in range(size):
            user, _name, properties, context = _event(k * size + i + 1)  # never an order
            mid = f"f{k}-{i}"
            message = {
                "type": "track",
                "messageId": mid,
                "userId": user,
                "event": "Product Viewed",
                "timestamp": datetime.now(UTC).isoformat(),
                "context": context,
                "properties": properties,
            }
            lines.append(json.dumps(message))
            t.files.add(mid)
        part = folder / f"{k:06d}.part"  # not a log file name: the source skips it
        part.write_text("\n".join(lines) + "\n")
        part.rename(folder / f"{k:06d}.ndjson")
        k += 1


# what arrived ---------------------------------------------------------------------------


class Arrivals:
    """Reads the sandbox's request log as it goes (it keeps only the newest 50,000)."""

    def __init__(self, sandbox: str) -> None:
        self.client = httpx.Client(base_url=sandbox, timeout=60)
        self.seen: Counter[str] = Counter()
        self.since = 0
        self.lost = 0  # log entries gone before they were read: exactly-once unverifiable

    def poll(self) -> None:
        while page := self.client.get(
            "/_sandbox/requests", params={"since": self.since, "limit": 500}
        ).json()["requests"]:
            self.lost += page[0]["seq"] - self.since
            for request in page:
                self.since = request["seq"] + 1
                if request.get("status") in (200, 201, 202):
                    self.seen.update(unique_ids(request))

    def wait_for(self, expected: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if expected <= self.seen.keys():
                return
            time.sleep(1)


# samples --------------------------------------------------------------------------------


def _proc(pid: int) -> dict[str, float]:
    """RSS (MB), open file descriptors and threads of a process."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(status["Threads"]),
    }


def _store(db: Path) -> dict[str, float]:
    """Size of the state store (db, WAL) and rows of the inbox and the run records."""
    size = {
        s: Path(f"{db}{s}").stat().st_size if Path(f"{db}{s}").exists() else 0 for s in ("", "-wal")
    }
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        inbox = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    conn.close()
    return {"db_mb": size[""] / 2**20, "wal_mb": size["-wal"] / 2**20, "inbox": inbox, "runs": runs}


def _lag(serve_url: str) -> dict[str, float]:
    """The worker's lag, from `/metrics`."""
    found = {"lag_msgs": 0.0, "lag_s": 0.0}
    for line in httpx.get(f"{serve_url}/metrics", timeout=30).text.splitlines():
        if line.startswith('espbridge_inbox_lag_messages{sync="realtime"}'):
            found["lag_msgs"] = float(line.split()[-1])
        elif line.startswith('espbridge_inbox_lag_seconds{sync="realtime"}'):
            found["lag_s"] = float(line.split()[-1])
    return found


def sample(at: float, pids: dict[str, int], db: Path, serve_url: str) -> dict[str, float]:
    row: dict[str, float] = {"t_s": at}
    for name, pid in pids.items():
        row.update({f"{name}_{k}": v for k, v in _proc(pid).items()})
    row.update(_store(db))
    row.update(_lag(serve_url))
    return row


def growth_per_hour(samples: list[dict[str, float]], key: str) -> float:
    """Mean of the last third minus mean of the first third, per hour between them."""
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]

    def mean(rows: list[dict[str, float]], k: str) -> float:
        return sum(r[k] for r in rows) / len(rows)

    hours = (mean(last, "t_s") - mean(first, "t_s")) / 3600
    return (mean(last, key) - mean(first, key)) / hours if hours > 0 else 0.0


def _print(row: dict[str, float], header: bool) -> None:
    if header:
        print(" ".join(f"{k:>14}" for k in row))
    print(" ".join(f"{v:>14.1f}" if isinstance(v, float) else f"{v:>14}" for v in row.values()))


# the run --------------------------------------------------------------------------------


def _config(work: Path, sandbox_url: str, schedule: bool) -> Path:
    folder = work / "folder"
    folder.mkdir()
    text = CONFIG.format(
        db=work / "state.db",
        write_key=WRITE_KEY,
        folder=folder,
        klaviyo=sandbox_url,
        time_scale=TIME_SCALE,
        files_sync=FILES_SYNC if schedule else "",
    )
    path = work / "espbridge.toml"
    path.write_text(text)
    return path


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long traffic runs")
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    # SQLite's page cache of each pooled connection fills up to 64 MB as the store grows:
    # at 200 events/s that takes about 6 minutes, and is not a leak.
    parser.add_argument("--warmup", type=float, default=360.0, help="seconds not in the growth")
    parser.add_argument("--schedule", action="store_true", help="also run `espbridge schedule`")
    parser.add_argument("--file-every", type=float, default=10.0, help="seconds between files")
    parser.add_argument("--file-events", type=int, default=50, help="events per file")
    return parser.parse_args()


class Services:
    """The sandbox, `serve` and (optionally) `schedule` as child processes."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ports = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.ports[0]}"
        self.serve_url = f"http://127.0.0.1:{self.ports[1]}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.arrivals = Arrivals(self.sandbox_url)

    def start(self, schedule: bool) -> None:
        work, (sandbox_port, serve_port) = self.work, self.ports
        self.procs["sandbox"] = spawn(
            [
                "-m",
                "esp_sandbox",
                "--port",
                str(sandbox_port),
                "--log-level",
                "warning",
                "--time-scale",
                str(TIME_SCALE),
            ],
            work / "sandbox.log",
        )
        wait_up(f"{self.sandbox_url}/_sandbox/stats", self.procs["sandbox"], work / "sandbox.log")
        config = str(_config(work, self.sandbox_url, schedule))
        cli = ["-m", "sync.cli"]
        self.procs["serve"] = spawn(
            [*cli, "serve", "--config", config, "--port", str(serve_port)], work / "serve.log"
        )
        wait_up(f"{self.serve_url}/healthz", self.procs["serve"], work / "serve.log")
        if schedule:
            self.procs["schedule"] = spawn(
                [*cli, "schedule", "--config", config], work / "schedule.log"
            )

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if name != "sandbox"}

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(timeout=90)


def soak(args: argparse.Namespace, services: Services, traffic: Traffic) -> list[dict[str, float]]:
    """Drive traffic, sampling every `--every` seconds; return the samples."""
    seconds = args.minutes * 60
    stop = threading.Event()
    # Daemons: if sampling fails, the bench exits instead of sending into a stopped serve.
    driver = (services.serve_url, args.rate, seconds, traffic)
    threads = [threading.Thread(target=drive, args=driver, daemon=True)]
    if args.schedule:
        feeder = (services.work / "folder", args.file_every, args.file_events, stop, traffic)
        threads.append(threading.Thread(target=feed_folder, args=feeder, daemon=True))
    arrivals = services.arrivals
    began = time.monotonic()
    for thread in threads:
        thread.start()
    samples: list[dict[str, float]] = []
    while (at := time.monotonic() - began) < seconds:
        row = sample(at, services.pids(), services.work / "state.db", services.serve_url)
        row["arrived"] = float(len(arrivals.seen))
        _print(row, not samples)
        samples.append(row)
        arrivals.poll()
        time.sleep(max(0.0, args.every - (time.monotonic() - began - at)))
    stop.set()
    threads[0].join()
    return samples


def _table_rows(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    conn.close()
    return ", ".join(f"{n}={c}" for n, c in sorted(counts.items()) if c)


def report(
    args: argparse.Namespace, samples: list[dict[str, float]], s: Services, t: Traffic
) -> None:
    steady = [r for r in samples if r["t_s"] >= args.warmup] or samples
    sent = t.delivered()
    seen = s.arrivals.seen
    missing = len(sent - seen.keys())
    twice = sum(1 for k, n in seen.items() if n > 1)
    triggers = sum(1 for k in seen if k.startswith("trigger:"))
    print(f"work dir: {s.work}")
    print(f"rows in the store: {_table_rows(s.work / 'state.db')}")
    print(
        f"sent {len(sent)} events ({len(t.failed)} given up by the client, {len(t.files)} via "
        f"files); arrived {len(sent & seen.keys())}, missing {missing}, more than once "
        f"{twice}; triggers sent {triggers} for {t.orders} orders (capped per customer); "
        f"sandbox log entries lost {s.arrivals.lost}"
    )
    print(
        f"worker lag at most {max(r['lag_msgs'] for r in samples):.0f} messages, "
        f"{max(r['lag_s'] for r in samples):.1f}s"
    )
    growth = {
        k: growth_per_hour(steady, k)
        for k in steady[0]
        if k.endswith(("_rss_mb", "_fds", "_threads")) or k in ("db_mb", "wal_mb", "runs")
    }
    print(
        "growth per hour, first to last third after warm-up: "
        + ", ".join(f"{k} {v:+.1f}" for k, v in growth.items())
    )
    once = not missing and not twice and not s.arrivals.lost and not t.failed
    print(
        f"RESULT rss_mb_per_h={growth['serve_rss_mb']:.1f} fds_per_h={growth['serve_fds']:.1f} "
        f"exactly_once={'yes' if once else 'no'}"
    )
    if not once:
        sys.exit(1)


def main() -> None:
    """Run the soak and print the RESULT line."""
    args = _parse()
    work = Path(tempfile.mkdtemp(prefix="espbridge-soak-"))
    traffic = Traffic()
    services = Services(work)
    try:
        services.start(args.schedule)
        samples = soak(args, services, traffic)
        services.arrivals.wait_for(traffic.delivered(), timeout=180)
        lag = _lag(services.serve_url)
        print(f"after the traffic: lag {lag['lag_msgs']:.0f} messages, {lag['lag_s']:.1f}s")
    finally:
        services.stop()
    report(args, samples, services, traffic)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
