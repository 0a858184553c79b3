"""Property: one run or many runs with restarts give the same decisions and unique_ids.

Events arrive out of order, but never later than the allowed lateness (an event's
time is at least the greatest time seen before it minus the lateness): within that
contract, decisions must not depend on how the stream was split into runs.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.message import parse_message
from mapping.types import Message
from sync.store.state import StateStore
from sync.triggers import TriggerSettings
from sync.triggers.explain import list_decisions
from tests.sync.triggers.timeline import at, customers, engine, triggers

LATENESS = 15  # minutes
SPECS: list[dict[str, Any]] = [
    {
        "name": "cart",
        "on": ["Product Added", "Checkout Started"],
        "key": "properties.cart_id",
        "wait": "30m",
        "cancel_on": ["Order Completed", "Checkout Started"],  # a checkout restarts the wait
        "priority": 100,
        "cap": {"max": 1, "per": "2h"},
        "quiet_hours": {"start": "21:00", "end": "21:40"},
        "emit": {"event": "Cart Abandoned", "recommendations": {"limit": 2}},
    },
    {
        "name": "cart_follow_up",
        "after": "cart",
        "key": "properties.cart_id",
        "wait": "60m",
        "cancel_on": "Order Completed",
        "priority": 90,
        "emit": {"event": "Cart Reminder", "properties": {"code": {"value": "X10"}}},
    },
    {
        "name": "browse",
        "on": "Product Viewed",
        "count": {"min": 3, "within": "40m", "same": "properties.product_id"},
        "wait": "5m",
        "cancel_on": "Product Added",
        "key": "properties.product_id",
        "priority": 50,
        "cap": {"max": 1, "per": "1h"},
        "emit": {"event": "Browse Intent", "properties": {"p": "properties.product_id"}},
    },
    {
        "name": "purchase",
        "on": "Order Completed",
        "priority": 100,
        "freshness": "48h",
        "emit": {"event": "Recent Purchase"},
    },
    {
        "name": "inactive",
        "absence": {"events": ["Email Opened"], "for": "90m"},
        "priority": 10,
        "emit": {"event": "Inactive"},
    },
]
EVENTS = st.sampled_from(
    ["Product Added", "Checkout Started", "Order Completed", "Product Viewed", "Email Opened"]
)
ONE = st.tuples(
    st.integers(0, 400),  # event time, minutes
    st.integers(0, LATENESS),  # arrival delay, within the lateness
    EVENTS,
    st.sampled_from(["ann", "bob", "cy"]),
    st.sampled_from(["k1", "k2", None]),  # cart id
    st.sampled_from(["p1", "p2"]),
)


def _messages(specs: list[tuple[int, int, str, str, str | None, str]]) -> list[Message]:
    out = []
    for n, (minute, delay, event, user, cart, product) in enumerate(specs):
        props: dict[str, Any] = {"product_id": product}
        if cart:
            props["cart_id"] = cart
        context = {"timezone": "Asia/Tokyo"} if user == "bob" else {}
        raw = {
            "type": "track",
            "event": event,
            "messageId": f"m{n:03d}",
            "timestamp": at(minute).isoformat(),
            "userId": user,
            "properties": props,
            "context": context,
        }
        out.append((minute + delay, n, parse_message(raw, f"t:{n}")))
    return [m for _, _, m in sorted(out, key=lambda x: (x[0], x[1]))]


def _play(path: Path, specs: list[TriggerSettings], runs: list[list[Message]]) -> Any:
    store = StateStore.open(f"sqlite:///{path}")
    emitted: dict[str, Any] = {}
    settings: dict[str, Any] = {
        "allowed_lateness": f"{LATENESS}m",
        "global_cap": {"max": 2, "per": "1h"},
        "priority_hold": "10m",
    }
    try:
        for messages in runs:
            eng = engine(store, specs, **settings)  # a restart: a new engine object
            eng.observe(messages, customers(messages))
            for emission in eng.due():
                emitted[emission.instance_id] = dict(emission.message.raw)
            eng.mark(list(emitted), "delivered")
        decided = {
            d.instance_id: (d.trigger, d.status, d.reason, d.detail, d.due_at)
            for d in list_decisions(store, limit=None, include_pending=True)
        }
    finally:
        store.close()
    return decided, emitted


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    events=st.lists(ONE, min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=12),
)
def test_split_runs_with_restarts_decide_like_one_run(events: Any, cuts: list[int]) -> None:
    messages = _messages(events)
    specs = triggers(*SPECS)
    bounds = sorted({0, len(messages), *(c for c in cuts if c <= len(messages))})
    runs = [messages[a:b] for a, b in itertools.pairwise(bounds)]
    with tempfile.TemporaryDirectory() as tmp:
        whole = _play(Path(tmp) / "one.db", specs, [messages])
        split = _play(Path(tmp) / "many.db", specs, runs)
    assert split[0] == whole[0]
    assert split[1] == whole[1]


@pytest.mark.parametrize("seed", range(12))
def test_seeded_streams_split_into_many_runs(seed: int) -> None:
    """Denser streams than hypothesis tends to draw (follow-ups, caps, rivals)."""
    rng = random.Random(seed)
    names = ["Product Added", "Checkout Started", "Order Completed", "Product Viewed"]
    events = [
        (
            rng.randint(0, 400),
            rng.randint(0, LATENESS),
            rng.choice([*names, "Email Opened"]),
            rng.choice(["ann", "bob", "cy"]),
            rng.choice(["k1", "k2", None]),
            rng.choice(["p1", "p2"]),
        )
        for _ in range(rng.randint(20, 80))
    ]
    messages = _messages(events)
    cuts = sorted({0, len(messages), *rng.sample(range(len(messages)), rng.randint(1, 15))})
    runs = [messages[a:b] for a, b in itertools.pairwise(cuts)]
    specs = triggers(*SPECS)
    with tempfile.TemporaryDirectory() as tmp:
        whole = _play(Path(tmp) / "one.db", specs, [messages])
        split = _play(Path(tmp) / "many.db", specs, runs)
    assert split == whole
    assert any(status == "fired" for _, status, *_ in whole[0].values())
