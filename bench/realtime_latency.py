"""Real-time latency: Segment batches into `serve`, events out at the sandbox's Klaviyo.

Starts the ESP sandbox and `espbridge serve` as child processes on 127.0.0.1, drives
`--rate` events/s for `--seconds` (batches of `--batch`, as a Segment library sends),
then matches each event's send time with the time the sandbox logged the request that
carried it (Klaviyo `unique_id` = messageId). One message in ten is an order, which fires
an immediate trigger (`wait = 0`, wall clock); the RESULT figures are the latency from
ingest of the order to the sandbox receiving the trigger's event. Last line:

    RESULT p50_ms=… p99_ms=… events_per_s=…

Usage: `.venv/bin/python bench/realtime_latency.py [--rate 1000] [--seconds 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from services import ROOT, free_port, spawn, unique_ids, wait_up

WRITE_KEY = "wk-bench"
TIME_SCALE = 1000  # the sandbox's rate windows, and the client's limiter, sped up alike
BATCH_SIZE = int(os.environ.get("BENCH_INBOX_BATCH", "100"))  # inbox messages per engine batch


def _config(state_url: str, klaviyo_url: str) -> Any:
    from sync.config import ConfigError, parse_config
    from sync.ingest.settings import InboxSourceSettings

    data: dict[str, Any] = {
        "state": {"url": state_url},
        "sources": {"web": {"type": "inbox", "batch_size": BATCH_SIZE}},
        "destinations": {
            "klaviyo": {
                "type": "klaviyo",
                "api_key": "pk_bench_123456",
                "base_url": klaviyo_url,
                "time_scale": TIME_SCALE,
            }
        },
        "syncs": {"realtime": {"source": "web", "destinations": ["klaviyo"]}},
        # An immediate trigger: every order gets a follow-up the moment it is decided.
        # The wall clock and no lateness are what an always-on `serve` runs with.
        "trigger_engine": {"clock": "wall", "allowed_lateness": "0s", "global_cap": None},
        "triggers": [
            {
                "name": "order_thanks",
                "on": "Order Completed",
                "priority": 100,
                "freshness": "1h",
                "emit": {
                    "event": "Order Thanks",
                    "properties": {"source_message_id": "messageId"},
                },
            }
        ],
    }
    try:
        return parse_config(data)
    except ConfigError:  # until sync.config lists the inbox source type
        placeholder = {**data, "sources": {"web": {"type": "segment", "path": "."}}}
        return parse_config(placeholder).model_copy(
            update={"sources": {"web": InboxSourceSettings(batch_size=BATCH_SIZE)}}
        )


def child(state_url: str, klaviyo_url: str, port: str) -> None:
    """`serve` in this process (the `--child` mode)."""
    from sync.ingest.serve import serve
    from sync.ingest.settings import IngestSettings

    settings = IngestSettings(write_keys=[WRITE_KEY])
    serve(_config(state_url, klaviyo_url), "127.0.0.1", int(port), settings=settings)


ORDER_EVERY = 10  # one message in ten is an order, which fires the immediate trigger


def _message(mid: str, n: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": mid,
        "userId": f"user-{n % 500}",
        "event": "Order Completed" if n % ORDER_EVERY == 0 else "Product Viewed",
        "timestamp": datetime.now().astimezone().isoformat(),
        "context": {"traits": {"email": f"user-{n % 500}@example.com"}},
        "properties": {"sku": f"SKU-{n % 97}", "price": n % 50 + 1, "order_id": f"o-{mid}"},
    }


async def drive(
    url: str, rate: int, seconds: float, batch: int, senders: int, prefix: str = "b"
) -> dict[str, float]:
    """Send `rate` events/s for `seconds`, open loop (a slow answer does not slow the
    offered load); return messageId → wall-clock send time of the acknowledged ones."""
    sent: dict[str, float] = {}
    interval = batch / rate
    start = time.monotonic()
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)

    async def post(n: int, client: httpx.AsyncClient) -> None:
        ids = [f"{prefix}{n}-{i}" for i in range(batch)]
        body = {"batch": [_message(m, n * batch + i) for i, m in enumerate(ids)]}
        at = time.time()
        for _attempt in range(3):  # as a Segment library would; a retry is deduplicated
            try:
                response = await client.post("/v1/batch", json=body)
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                sent.update(dict.fromkeys(ids, at))  # latency counts from the first try
            return

    async with httpx.AsyncClient(
        base_url=url, auth=(WRITE_KEY, ""), timeout=60, limits=limits
    ) as client:
        tasks = []
        n = 0
        while (due := start + n * interval) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(post(n, client)))
            n += 1
        await asyncio.gather(*tasks)
    return sent


def arrivals(sandbox: str, expected: set[str], timeout: float) -> dict[str, float]:
    """messageId → wall-clock time the sandbox first logged a request carrying it."""
    seen: dict[str, float] = {}
    since = 0
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=sandbox, timeout=30) as client:
        while not expected <= seen.keys() and time.monotonic() < deadline:
            page = client.get("/_sandbox/requests", params={"since": since}).json()["requests"]
            for request in page:
                since = request["seq"] + 1
                if request.get("status") in (200, 201, 202):
                    at = datetime.fromisoformat(request["time"]).timestamp()
                    for mid in unique_ids(request):
                        seen.setdefault(mid, at)
            if not page:
                time.sleep(0.2)
    return seen


def _is_order(mid: str, batch: int) -> bool:
    """Whether `drive` made this messageId an order (`b<n>-<i>` is message n*batch+i)."""
    n, i = mid[1:].split("-")
    return (int(n) * batch + int(i)) % ORDER_EVERY == 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run the benchmark and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--batch", type=int, default=100, help="events per request (analytics-python sends 100)"
    )
    parser.add_argument("--senders", type=int, default=32, help="connections at most")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--child", nargs=3, metavar=("STATE_URL", "KLAVIYO_URL", "PORT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="espbridge-bench-"))
    sandbox_port, serve_port = free_port(), free_port()
    sandbox_url, serve_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{serve_port}"
    sandbox = spawn(
        [
            "-m",
            "esp_sandbox",
            "--port",
            str(sandbox_port),
            "--time-scale",
            str(TIME_SCALE),
            "--log-level",
            "warning",
        ],
        work / "sandbox.log",
    )
    serve = None
    try:
        wait_up(f"{sandbox_url}/_sandbox/stats", sandbox, work / "sandbox.log")
        state_url = f"sqlite:///{work / 'state.db'}"
        serve = spawn(
            [str(Path(__file__)), "--child", state_url, sandbox_url, str(serve_port)],
            work / "serve.log",
        )
        wait_up(f"{serve_url}/healthz", serve, work / "serve.log")
        if args.warmup:  # first runs import and connect: not what is measured
            warm = asyncio.run(
                drive(serve_url, args.rate, args.warmup, args.batch, args.senders, "warm")
            )
            arrivals(sandbox_url, set(warm), timeout=120)
        began = time.monotonic()
        sent = asyncio.run(drive(serve_url, args.rate, args.seconds, args.batch, args.senders))
        elapsed = time.monotonic() - began
        fired = {f"trigger:{m}": at for m, at in sent.items() if _is_order(m, args.batch)}
        seen = arrivals(sandbox_url, set(sent) | set(fired), timeout=120)
        metrics = httpx.get(f"{serve_url}/metrics").text
    finally:
        for proc in (serve, sandbox):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
        for proc in (serve, sandbox):
            if proc is not None:
                proc.wait(timeout=60)
    forwarded = [(seen[m] - at) * 1000 for m, at in sent.items() if m in seen]
    latencies = [(seen[m] - at) * 1000 for m, at in fired.items() if m in seen]
    missing = len(sent) - len(forwarded) + len(fired) - len(latencies)
    print(f"work dir: {work}")
    print(
        f"acknowledged {len(sent)} events in {elapsed:.1f}s; forwarded to the sandbox: "
        f"{len(forwarded)}; immediate triggers: {len(latencies)} of {len(fired)}; "
        f"missing: {missing}"
    )
    if forwarded:
        print(
            f"plain forwarding: p50_ms={_percentile(forwarded, 0.5):.1f} "
            f"p99_ms={_percentile(forwarded, 0.99):.1f}"
        )
    for line in metrics.splitlines():
        if line.startswith(("espbridge_inbox_lag", "espbridge_ingest_to_commit_seconds_count")):
            print(line)
    if not latencies:
        sys.exit("RESULT p50_ms=nan p99_ms=nan events_per_s=0")
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    print(f"max_ms={max(latencies):.1f} p90_ms={_percentile(latencies, 0.90):.1f}")
    print(f"RESULT p50_ms={p50:.1f} p99_ms={p99:.1f} events_per_s={len(sent) / elapsed:.0f}")
    if missing:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
