"""The same trigger semantics on PostgreSQL (skipped without a server, failed in CI)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sync.store.state import StateStore
from sync.triggers.explain import explain, list_decisions
from tests.sync.triggers.conftest import server_url
from tests.sync.triggers.test_triggers_cart import CART, FOLLOW_UP
from tests.sync.triggers.test_triggers_constructs import BROWSE, views
from tests.sync.triggers.test_triggers_replay import LATENESS, SPECS, _messages
from tests.sync.triggers.timeline import (
    at,
    customers,
    engine,
    outcomes,
    run,
    track,
    triggers,
)

pytestmark = pytest.mark.postgres


def test_cart_fires_cancels_and_follows_up(pg_store: StateStore) -> None:
    eng = engine(pg_store, triggers(CART, FOLLOW_UP), now=at(3 * 24 * 60))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="a1")])
    run(eng, [track("Product Added", 1, cart_id="k2", mid="a2")])
    run(eng, [track("Order Completed", 20, cart_id="k2", mid="o2")])
    first = run(eng, [track("X", 40)])
    assert [e.message.properties["cart_id"] for e in first] == ["k1"]
    second = run(eng, [track("X", 31 + 24 * 60)])
    assert [e.trigger for e in second] == ["cart_follow_up"]
    assert outcomes(pg_store) == {
        "cart_abandoned/a1": ("fired", "fired"),
        "cart_abandoned/a2": ("cancelled", "cancel_event"),
        "cart_follow_up/a1": ("fired", "fired"),
    }
    record = list_decisions(pg_store, status="cancelled")[0]
    assert "Order Completed o2" in explain(record)


def test_count_and_caps(pg_store: StateStore) -> None:
    eng = engine(pg_store, triggers(BROWSE))
    assert len(run(eng, views(0, 10, 20, 30))) == 1
    assert list(outcomes(pg_store).values()).count(("suppressed", "cap")) == 1


@pytest.fixture
def pg_urls(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Makes fresh databases on the session's server; drops them afterwards."""
    base = server_url(request)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"triggers_replay_{len(made)}_{random.getrandbits(32):08x}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        made.append(name)
        return sa.make_url(base).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def _play(url: str, runs: list[list[Any]]) -> Any:
    store = StateStore.open(url)
    emitted: dict[str, Any] = {}
    settings: dict[str, Any] = {
        "allowed_lateness": f"{LATENESS}m",
        "global_cap": {"max": 2, "per": "1h"},
        "priority_hold": "10m",
    }
    try:
        for messages in runs:
            eng = engine(store, triggers(*SPECS), **settings)
            eng.observe(messages, customers(messages))
            for emission in eng.due():
                emitted[emission.instance_id] = dict(emission.message.raw)
            eng.mark(list(emitted), "delivered")
        decided = {
            d.instance_id: (d.status, d.reason, d.detail)
            for d in list_decisions(store, limit=None, include_pending=True)
        }
    finally:
        store.close()
    return decided, emitted


@pytest.mark.parametrize("seed", range(3))
def test_split_runs_decide_like_one_run(pg_urls: Any, seed: int) -> None:
    rng = random.Random(seed)
    names = ["Product Added", "Checkout Started", "Order Completed", "Product Viewed"]
    events = [
        (
            rng.randint(0, 400),
            rng.randint(0, LATENESS),
            rng.choice([*names, "Email Opened"]),
            rng.choice(["ann", "bob"]),
            rng.choice(["k1", "k2", None]),
            rng.choice(["p1", "p2"]),
        )
        for _ in range(50)
    ]
    messages = _messages(events)
    cuts = sorted({0, len(messages), *rng.sample(range(len(messages)), 8)})
    runs = [messages[a:b] for a, b in itertools.pairwise(cuts)]
    assert _play(pg_urls(), runs) == _play(pg_urls(), [messages])
