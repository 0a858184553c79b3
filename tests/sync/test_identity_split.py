"""Property: the same messages give the same customers however runs split them.

Each run uses a fresh resolver over the same SQLite store, as separate `espbridge run`
invocations would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.identity import IdentitySettings
from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.identity import identity_conflicts, identity_customers
from sync.store.state import StateStore
from tests.sync.identity_helpers import msg, partition

USERS = st.none() | st.sampled_from(["u1", "u2", "u3"])
ANONS = st.none() | st.sampled_from(["a1", "a2", "a3", "a4"])
EMAILS = st.none() | st.sampled_from(["e1@x.com", "e2@x.com", "E2@X.COM", "null", "e3@x.com"])
NAMES = st.none() | st.sampled_from(["Ann", "Bob"])


@st.composite
def messages(draw: st.DrawFn) -> list[Message]:
    count = draw(st.integers(min_value=1, max_value=14))
    out = []
    for n in range(count):
        user, anon = draw(USERS), draw(ANONS)
        if user is None and anon is None:
            anon = "a1"
        kind = draw(st.sampled_from(["track", "identify", "alias"]))
        previous = draw(st.sampled_from(["a1", "a2", "a3"])) if kind == "alias" else None
        name = draw(NAMES)
        out.append(
            msg(
                n,
                kind=kind,
                user=user,
                anon=anon,
                email=draw(EMAILS),
                previous=previous,
                traits={"first_name": name} if name else None,
                # equal times happen; messageId breaks the tie
                minutes=draw(st.integers(min_value=0, max_value=5)),
            )
        )
    return out


def snapshot(store: StateStore) -> tuple[Any, ...]:
    with store.engine.connect() as conn:
        customers = {
            cid: traits
            for cid, traits in conn.execute(
                sa.select(identity_customers.c.customer_id, identity_customers.c.traits)
            )
        }
        t = identity_conflicts
        conflicts = set(
            conn.execute(sa.select(t.c.kind, t.c.value, t.c.customer_id, t.c.other_customer_id))
        )
    return partition(store), customers, conflicts


def run_all(runs: Sequence[Sequence[Message]], rules: IdentitySettings) -> tuple[Any, ...]:
    store = StateStore.open("sqlite:///:memory:")
    try:
        for batch in runs:
            IdentityResolver(store, rules).resolve_batch(batch)
        return snapshot(store)
    finally:
        store.close()


UNLIMITED = IdentitySettings(limits={"user_id": 99, "email": 99, "anonymous_id": 99})
DEFAULT = IdentitySettings(limits={"user_id": 1, "email": 2, "anonymous_id": 2})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_any_split_and_order_gives_the_same_customers(
    batch: list[Message], data: st.DataObject
) -> None:
    """With no limit reached, neither order nor split matters."""
    runs: list[list[Message]] = [[] for _ in range(3)]
    for message in batch:
        runs[data.draw(st.integers(0, 2))].append(message)
    runs = [data.draw(st.permutations(run)) for run in runs]
    assert run_all(runs, UNLIMITED) == run_all([batch], UNLIMITED)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_splitting_in_event_time_order_gives_the_same_customers(
    batch: list[Message], data: st.DataObject
) -> None:
    """With limits, event time decides: consecutive runs over time-ordered input agree."""
    ordered = sorted(batch, key=lambda m: (m.timestamp, m.message_id))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=3)))
    runs, start = [], 0
    for cut in [*cuts, len(ordered)]:
        runs.append(data.draw(st.permutations(ordered[start:cut])))
        start = cut
    assert run_all(runs, DEFAULT) == run_all([data.draw(st.permutations(batch))], DEFAULT)
