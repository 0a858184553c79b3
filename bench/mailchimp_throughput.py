"""Mailchimp throughput: espbridge against a naive loop of the official client.

Both move the same members and events into the same sandbox (run in a child process,
with a fixed per-request latency standing in for Mailchimp's): the baseline is the
official `mailchimp_marketing` client called once per member (`set_list_member`) and
once per event (`create_list_member_event`); espbridge maps the same Segment messages
and sends them through `MailchimpDestination` (batch subscribe for the members, the
10 connections for the events).

Connection utilisation is the time-weighted mean of espbridge's in-flight requests
(measured in the client around each HTTP attempt) divided by the 10 connections
Mailchimp allows per API key.

Usage: `.venv/bin/python bench/mailchimp_throughput.py [--members 200] [--events 3]
[--latency-ms 100]`. The last line is `RESULT speedup_vs_sdk_loop=… connection_utilisation=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

API_KEY = "0123456789abcdef0123456789abcdef-us1"
CONNECTIONS = 10


def _serve(conn: Connection) -> None:
    from esp_sandbox.context import SandboxConfig
    from esp_sandbox.server import SandboxServer

    with SandboxServer(SandboxConfig(seed=1)) as server:
        conn.send(server.url)
        conn.recv()  # wait for "stop"


def _prepare(url: str, latency: float) -> str:
    httpx.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()
    httpx.post(
        f"{url}/_sandbox/mailchimp/latency", json={"seconds": latency}, timeout=10
    ).raise_for_status()
    state = httpx.get(f"{url}/_sandbox/state", timeout=30).json()["mailchimp"]
    return str(next(iter(state["lists"])))


def _dataset(members: int, events: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(members):
        email = f"bench{i}@example.com"
        messages.append(
            {
                "type": "identify",
                "messageId": f"i{i}",
                "userId": f"u{i}",
                "timestamp": "2026-07-20T10:00:00Z",
                "traits": {"email": email, "first_name": f"B{i}", "last_name": "Ench"},
            }
        )
        for n in range(events):
            messages.append(
                {
                    "type": "track",
                    "messageId": f"e{i}-{n}",
                    "userId": f"u{i}",
                    "timestamp": "2026-07-20T10:00:01Z",
                    "event": "Viewed Product",
                    "properties": {"sku": f"S{n}", "price": 9.5},
                    "context": {"traits": {"email": email}},
                }
            )
    return messages


def sdk_loop(url: str, list_id: str, messages: list[dict[str, Any]]) -> float:
    """Seconds for the official client, one call per member and per event."""
    import mailchimp_marketing

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": API_KEY, "server": "us1"})
    client.api_client.host = f"{url}/3.0"
    started = time.perf_counter()
    for m in messages:
        if m["type"] == "identify":
            email = m["traits"]["email"]
            key = hashlib.md5(email.lower().encode()).hexdigest()
            body = {
                "email_address": email,
                "status_if_new": "subscribed",
                "merge_fields": {
                    "FNAME": m["traits"]["first_name"],
                    "LNAME": m["traits"]["last_name"],
                },
            }
            client.lists.set_list_member(list_id, key, body)
        else:
            email = m["context"]["traits"]["email"]
            key = hashlib.md5(email.lower().encode()).hexdigest()
            props = {k: str(v) for k, v in m["properties"].items()}
            client.lists.create_list_member_event(
                list_id,
                key,
                {
                    "name": "viewed_product",
                    "properties": props,
                    "occurred_at": "2026-07-20T10:00:01+00:00",
                },
            )
    return time.perf_counter() - started


async def espbridge(
    url: str, list_id: str, messages: list[dict[str, Any]]
) -> tuple[float, float, int, float]:
    """Seconds, time-weighted mean in-flight requests, requests and client CPU seconds."""
    from connectors.base import Record
    from connectors.mailchimp import MailchimpDestination, MailchimpSettings
    from mapping.message import parse_message

    settings = MailchimpSettings(api_key=API_KEY, base_url=f"{url}/3.0", list_id=list_id)
    dest = MailchimpDestination("bench", settings)
    records = [
        r
        for i, raw in enumerate(messages)
        for r in dest.map(parse_message(raw, f"bench:{i}"), None)
    ]
    assert all(isinstance(r, Record) for r in records)
    await dest.check()  # warm-up: first connection and lazy imports, outside the timing
    dest.client.meter.reset()
    cpu = time.process_time()
    started = time.perf_counter()
    for record in records:
        assert isinstance(record, Record)
        await dest.process_record(record)
    outcomes = await dest.drain()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    in_flight = dest.client.meter.mean_in_flight()
    requests = dest.client.meter.requests
    await dest.aclose()
    bad = [o for o in outcomes if o.status != "acknowledged"]
    if bad or len(outcomes) != len(records):
        raise SystemExit(f"espbridge run failed: {len(bad)} not acknowledged, e.g. {bad[:1]}")
    return elapsed, in_flight, requests, cpu


def _count(url: str, list_id: str) -> tuple[int, int]:
    state = httpx.get(f"{url}/_sandbox/state", timeout=60).json()["mailchimp"]
    members = state["lists"][list_id]["members"]
    return len(members), sum(len(m["events"]) for m in members.values())


def main() -> None:
    """Run both, check both wrote the same, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--events", type=int, default=3, help="events per member")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    messages = _dataset(args.members, args.events)
    expected = (args.members, args.members * args.events)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child,), daemon=True)
    process.start()
    try:
        url = parent.recv()
        list_id = _prepare(url, args.latency_ms / 1000)
        sdk_seconds = sdk_loop(url, list_id, messages)
        assert _count(url, list_id) == expected, _count(url, list_id)
        list_id = _prepare(url, args.latency_ms / 1000)
        ours, in_flight, requests, cpu = asyncio.run(espbridge(url, list_id, messages))
        assert _count(url, list_id) == expected, _count(url, list_id)
    finally:
        parent.send("stop")
        process.join(timeout=15)
    calls = len(messages)
    print(
        f"items: {args.members} members + {args.members * args.events} events, "
        f"latency {args.latency_ms:.0f} ms per request"
    )
    print(f"official client loop: {sdk_seconds:.2f} s ({calls / sdk_seconds:.0f} items/s)")
    print(
        f"espbridge:            {ours:.2f} s ({calls / ours:.0f} items/s), "
        f"mean in-flight {in_flight:.2f} of {CONNECTIONS}, {requests} requests, "
        f"client CPU {cpu:.2f} s"
    )
    print(
        f"RESULT speedup_vs_sdk_loop={sdk_seconds / ours:.1f} "
        f"connection_utilisation={in_flight / CONNECTIONS:.2f}"
    )


if __name__ == "__main__":
    main()
