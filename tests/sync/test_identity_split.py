"""Property: the same messages give the same customers however runs split them.

Each run uses a fresh resolver over the same SQLite store, as separate `espbridge run`
invocations would. Besides the tables, the merge history must agree where a user can
see it: where every id handed out or recorded leads (`assert_same_customers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.identity import IdentitySettings
from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.identity import identity_conflicts, identity_customers
from sync.store.state import StateStore
from tests.sync.identity_helpers import fates, live, merged_from, msg, partition

USERS = st.none() | st.sampled_from(["u1", "u2", "u3"])
ANONS = st.none() | st.sampled_from(["a1", "a2", "a3", "a4"])
EMAILS = st.none() | st.sampled_from(["e1@x.com", "e2@x.com", "E2@X.COM", "null", "e3@x.com"])
NAMES = st.none() | st.sampled_from(["Ann", "Bob"])


@st.composite
def messages(draw: st.DrawFn, previous_ids: Sequence[str] = ("a1", "a2", "a3")) -> list[Message]:
    count = draw(st.integers(min_value=1, max_value=14))
    out = []
    for n in range(count):
        user, anon = draw(USERS), draw(ANONS)
        if user is None and anon is None:
            anon = "a1"
        kind = draw(st.sampled_from(["track", "identify", "alias"]))
        previous = draw(st.sampled_from(previous_ids)) if kind == "alias" else None
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


@dataclass
class Outcome:
    """What a user can observe after the runs."""

    tables: tuple[Any, ...]
    """`snapshot`: the identifier partition, traits and recorded conflicts."""
    messages: dict[str, str]
    """messageId → the customer its run's id leads to now (through the merge history)."""
    named: dict[str, str]
    """Every id a user could have written down (handed out, in a conflict, merged
    away) → the customer it leads to now."""
    history: dict[str, str]
    """identity_merges: merged-away id → where it went."""
    live: set[str]


def run_all(runs: Sequence[Sequence[Message]], rules: IdentitySettings) -> Outcome:
    store = StateStore.open("sqlite:///:memory:")
    try:
        handed: dict[str, str] = {}
        for batch in runs:
            result = IdentityResolver(store, rules).resolve(batch)
            handed |= {mid: customer.customer_id for mid, customer in result.customers.items()}
        tables = snapshot(store)
        history = merged_from(store)
        in_conflicts = {side for c in tables[2] for side in c[2:]}
        named = fates(store, {*handed.values(), *in_conflicts, *history})
        messages = {mid: named[customer] for mid, customer in handed.items()}
        return Outcome(tables, messages, named, history, live(store))
    finally:
        store.close()


def assert_same_customers(split: Outcome, whole: Outcome) -> None:
    """The split runs give what one run gives, merge history included.

    Split runs merge customers one run never made, so the histories differ in rows;
    what must agree is where ids lead: the same final customer for every message, and
    for every id the one run named (a conflict side, a merged-away id). The history is
    flat in both: every row leads straight to a live customer.
    """
    assert split.tables == whole.tables
    assert split.messages == whole.messages
    assert {i: split.named.get(i, i) for i in whole.named} == whole.named
    for outcome in (split, whole):
        assert set(outcome.history.values()) <= outcome.live
        assert set(outcome.messages.values()) <= outcome.live


UNLIMITED = IdentitySettings(limits={"user_id": 99, "email": 99, "anonymous_id": 99})
DEFAULT = IdentitySettings(limits={"user_id": 1, "email": 2, "anonymous_id": 2})
RENAMES = DEFAULT.model_copy(update={"alias_previous_id": "user_id"})


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
    assert_same_customers(run_all(runs, UNLIMITED), run_all([batch], UNLIMITED))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_splitting_in_event_time_order_gives_the_same_customers(
    batch: list[Message], data: st.DataObject
) -> None:
    """With limits, event time decides: consecutive runs over time-ordered input agree."""
    _split_in_event_time(batch, data, DEFAULT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(previous_ids=("u1", "u2", "u3")), st.data())
def test_user_id_aliases_split_in_event_time_order_give_the_same_customers(
    batch: list[Message], data: st.DataObject
) -> None:
    """Aliases between user ids rename customers: a split run finds the former ids."""
    _split_in_event_time(batch, data, RENAMES)


def _split_in_event_time(
    batch: list[Message], data: st.DataObject, rules: IdentitySettings
) -> None:
    """Runs cut at drawn points of the time-ordered batch (each run shuffled) find the
    same customers as one run of the whole batch in any order."""
    ordered = sorted(batch, key=lambda m: (m.timestamp, m.message_id))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=3)))
    runs, start = [], 0
    for cut in [*cuts, len(ordered)]:
        runs.append(data.draw(st.permutations(ordered[start:cut])))
        start = cut
    assert_same_customers(run_all(runs, rules), run_all([data.draw(st.permutations(batch))], rules))
