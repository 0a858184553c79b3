"""Klaviyo destination throughput against the time-scaled sandbox, vs a naive SDK loop.

The sandbox runs in its own process and enforces Klaviyo's published limits,
time-scaled (`--time-scale 2`: a Klaviyo minute passes in 30 s). In one run this
measures:

(a) espbridge's acknowledged events per (scaled) minute, over `--minutes` full
    scaled minutes from its first request, as a ratio of the ceiling: bulk
    150 req/min x 1,000 events + single 3,500 req/min = 153,500 events/min;
(b) the official klaviyo-api SDK's `Events.create_event`, one call per event in a
    plain loop, on the same events and the same sandbox.

The last line is `RESULT ratio_to_ceiling=… speedup_vs_sdk_loop=…`.

The sandbox is one Python process that validates every body against the spec
(about 0.36 s per 1,000-event bulk request), so above ~1x it, not the client, is
the bottleneck: the default scale is 1 (a run takes about 5 minutes). Smaller
scales (0.5) give the sandbox more headroom.

usage: .venv/bin/python bench/klaviyo_throughput.py [--time-scale 1] [--minutes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import Record
from connectors.klaviyo import KlaviyoDestination, KlaviyoSettings
from connectors.klaviyo.actions import track_event
from mapping.message import parse_message

API_KEY = "pk_bench_0123456789"
CEILING_PER_MIN = 150 * 1000 + 3500
EVENT_MARK = b'{"type":"event",'


def _serve(port: int, time_scale: float, stop: Any) -> None:
    from esp_sandbox.context import SandboxConfig
    from esp_sandbox.server import SandboxServer

    with SandboxServer(SandboxConfig(time_scale=time_scale, seed=1), port=port):
        stop.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/_sandbox/stats", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"sandbox did not start at {url}")


@dataclass
class Acks:
    """(monotonic time, events) of every 202 answer from an event endpoint."""

    marks: list[tuple[float, int]] = field(default_factory=list)
    first_request: float | None = None


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport and notes when events are acknowledged."""

    def __init__(self, acks: Acks) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200))
        self.acks = acks

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.acks.first_request is None:
            self.acks.first_request = time.monotonic()
        response = await self.inner.handle_async_request(request)
        if response.status_code == 202 and "event" in request.url.path:
            self.acks.marks.append((time.monotonic(), request.content.count(EVENT_MARK)))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


USERS = 500
"""Distinct profiles the events come from (about two events per profile per bulk request)."""


def _message(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed" if i % 3 else "Checkout Started",
        "messageId": f"bench-{i}",
        "userId": f"user-{i % USERS}",
        "timestamp": "2026-07-20T10:00:00Z",
        "context": {"traits": {"email": f"user{i % USERS}@example.com"}},
        "properties": {"sku": f"SKU-{i % 997}", "price": 19.99, "currency": "USD"},
    }


def build_records(destination: KlaviyoDestination, count: int) -> tuple[list[Record], float]:
    """`count` records: 5,000 mapped for real (timed), the rest cloned with fresh keys."""
    started = time.perf_counter()
    mapped = []
    for i in range(min(count, 5000)):
        for record in destination.map(parse_message(_message(i), f"bench:{i}"), None):
            assert isinstance(record, Record)
            mapped.append(record)
    per_second = len(mapped) / (time.perf_counter() - started)
    records = list(mapped)
    for i in range(len(mapped), count):
        template = mapped[i % len(mapped)]
        key = f"bench-{i}"
        fields = {**template.fields, "unique_id": key}
        records.append(Record(key, template.action, fields, f"bench:{i}", template.event_time))
    return records, per_second


def settings(url: str, time_scale: float, queue: int) -> KlaviyoSettings:
    """Destination settings for the bench (one flush for the whole run)."""
    return KlaviyoSettings.model_validate(
        {
            "api_key": API_KEY,
            "base_url": url,
            "time_scale": time_scale,
            "freshness_days": 100_000,
            "batch": {"queue_limit": queue, "bulk_concurrency": 8, "single_concurrency": 48},
            "retry": {"max_attempts": 8, "initial_seconds": 0.05, "max_delay_seconds": 2.0},
        }
    )


async def run_espbridge(url: str, time_scale: float, minutes: int) -> tuple[float, int, float]:
    """(ratio to the ceiling, events acknowledged in the window, mapping events/s)."""
    count = int(CEILING_PER_MIN * (minutes + 0.3))
    acks = Acks()
    destination = KlaviyoDestination(
        "bench", settings(url, time_scale, count + 1), transport=CountingTransport(acks)
    )
    records, map_rate = build_records(destination, count)
    for record in records:
        await destination.process_record(record)
    outcomes = await destination.drain()
    await destination.aclose()
    rejected = [o for o in outcomes if o.status.value != "acknowledged"]
    if rejected:
        print(f"  {len(rejected)} rejected, e.g. {rejected[0].reason}")
    assert acks.first_request is not None
    window_end = acks.first_request + minutes * 60 / time_scale
    in_window = sum(n for when, n in acks.marks if when <= window_end)
    total = sum(n for _, n in acks.marks)
    print(
        f"  espbridge: {total} events acknowledged in all, {in_window} in the first {minutes} min"
    )
    return in_window / (minutes * CEILING_PER_MIN), in_window, map_rate


def run_sdk_loop(url: str, time_scale: float, seconds: float) -> float:
    """Events per scaled minute of `KlaviyoAPI.Events.create_event` in a loop."""
    from klaviyo_api import KlaviyoAPI

    sdk = KlaviyoAPI(API_KEY, test_host=url, max_retries=3)
    destination = KlaviyoDestination("sdk", settings(url, time_scale, 10))
    records, _ = build_records(destination, 5000)
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        sdk.Events.create_event(track_event.build_request(records[sent % len(records)]).body)
        sent += 1
    elapsed_min = (time.monotonic() - started) * time_scale / 60
    return sent / elapsed_min


def main() -> None:
    """Run both measurements and print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--minutes", type=int, default=2, help="scaled minutes measured")
    parser.add_argument("--sdk-minutes", type=float, default=1.0, help="scaled minutes of SDK loop")
    args = parser.parse_args()

    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, args.time_scale, stop), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        print(f"sandbox {url}, time scale {args.time_scale}x, ceiling {CEILING_PER_MIN}/min")
        ratio, _, map_rate = asyncio.run(run_espbridge(url, args.time_scale, args.minutes))
        ours_per_min = ratio * CEILING_PER_MIN
        print(f"  mapping: {map_rate:,.0f} events/s on one core")
        time.sleep(60 / args.time_scale)  # let the account's windows reset
        sdk_seconds = args.sdk_minutes * 60 / args.time_scale
        sdk_per_min = run_sdk_loop(url, args.time_scale, sdk_seconds)
        print(f"  espbridge {ours_per_min:,.0f} events/min; SDK loop {sdk_per_min:,.0f} events/min")
        speedup = ours_per_min / sdk_per_min
        print(f"RESULT ratio_to_ceiling={ratio:.3f} speedup_vs_sdk_loop={speedup:.1f}")
    finally:
        stop.set()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
