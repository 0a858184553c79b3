"""The resolver's fast paths give exactly what observing every message in full gives.

`IdentityGraph.observe_known` places most messages (identifiers all known, one
customer) without loading the customer, re-timing identifiers in the cache; the slow
path loads every customer a message touches and observes it. Both must give the same
`Resolution`s and leave the same store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.identity import IdentityGraph, IdentitySettings, Normalizer, extract
from mapping.types import Message
from sync.identity import IdentityResolver, Resolution, in_event_order
from sync.store.identity import identity_customers, identity_identifiers, identity_merges
from sync.store.state import StateStore
from tests.sync.identity_helpers import T0, msg
from tests.sync.test_identity_split import messages as random_messages


def _slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every message through the full `observe` (loading each customer touched)."""
    monkeypatch.setattr(IdentityGraph, "observe_known", lambda self, ranked, hour: None)


def _outcome(result: Resolution) -> tuple[Any, ...]:
    customers = {
        mid: (c.customer_id, list(c.identifiers.items()), list(c.traits.items()))
        for mid, c in result.customers.items()
    }
    return customers, list(result.customers), result.conflicts, result.merges, result.unresolved


def _store_rows(store: StateStore) -> tuple[Any, ...]:
    t, c, m = identity_identifiers, identity_customers, identity_merges
    with store.engine.connect() as conn:
        return (
            sorted(
                conn.execute(
                    sa.select(
                        t.c.kind, t.c.value, t.c.customer_id, t.c.first_seen_us, t.c.last_seen_us
                    )
                ).all()
            ),
            sorted(conn.execute(sa.select(c.c.customer_id, c.c.traits, c.c.trait_stamps)).all()),
            sorted(conn.execute(sa.select(m.c.from_customer_id, m.c.into_customer_id)).all()),
        )


def _run(
    batches: Sequence[Sequence[Message]],
    rules: IdentitySettings,
    *,
    cache_customers: int = 1000,
    fresh_resolver_every: int = 0,
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    store = StateStore.open("sqlite:///:memory:")
    try:
        resolver = IdentityResolver(store, rules, cache_customers=cache_customers)
        outcomes = []
        for n, batch in enumerate(batches):
            if fresh_resolver_every and n % fresh_resolver_every == 0:
                resolver = IdentityResolver(store, rules, cache_customers=cache_customers)
            outcomes.append(_outcome(resolver.resolve(batch)))
        return outcomes, _store_rows(store)
    finally:
        store.close()


def _both(
    monkeypatch: pytest.MonkeyPatch, batches: Sequence[Sequence[Message]], **kwargs: Any
) -> None:
    rules = kwargs.pop("rules", IdentitySettings())
    fast = _run(batches, rules, **kwargs)
    with monkeypatch.context() as patch:
        _slow_path(patch)
        slow = _run(batches, rules, **kwargs)
    for n, (got, want) in enumerate(zip(fast[0], slow[0], strict=True)):
        for part, (a, b) in enumerate(zip(got, want, strict=True)):
            assert a == b, f"batch {n}, part {part}"
    assert fast[1] == slow[1]


def _hours(n: int, hours: int, **kwargs: Any) -> Message:
    return msg(n, minutes=hours * 60 + n % 60, **kwargs)


def test_returning_visitor_is_re_timed_like_the_slow_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches = [
        [_hours(1, 0, user="u1", anon="a1"), _hours(2, 0, anon="a2", email="x@x.com")],
        # Same hour (nothing changes), then a new hour (last seen moves), then an
        # earlier hour (first seen moves): all without loading the customer.
        [_hours(3, 0, user="u1", anon="a1"), _hours(4, 5, anon="a1")],
        [_hours(5, 7, user="u1"), msg(6, minutes=-120, anon="a1")],
        # Re-timed, then loaded in the same batch by traits and by a merge.
        [_hours(7, 9, anon="a1"), _hours(8, 9, user="u1", traits={"first_name": "Ann"})],
        [_hours(9, 11, anon="a2"), _hours(10, 12, user="u1", anon="a2")],
        # Only known ids of two customers: no fast path, a refused merge.
        [_hours(11, 13, user="u2", anon="a3"), _hours(12, 14, user="u2", anon="a1")],
        # A new visitor, then again in the batch (its component is in the graph now).
        [_hours(13, 15, anon="a9"), _hours(14, 15, anon="a9"), _hours(15, 16, anon="a9")],
    ]
    placed: list[object] = []
    known = IdentityGraph.observe_known

    def counting(self: IdentityGraph, ranked: Sequence[tuple[str, str]], hour: int) -> object:
        spot = known(self, ranked, hour)
        placed.append(spot)
        return spot

    with monkeypatch.context() as patch:
        patch.setattr(IdentityGraph, "observe_known", counting)
        _run(batches, IdentitySettings())
    # Unloaded customers (ids) re-timed or not, and loaded ones (keys): all exercised.
    assert {type(spot) for spot in placed} == {str, int, type(None)}
    _both(monkeypatch, batches)
    _both(monkeypatch, batches, cache_customers=1)  # evicted: read from the store
    _both(monkeypatch, batches, fresh_resolver_every=2)  # another process's resolver


def test_re_timing_changes_the_order_of_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = IdentityResolver(StateStore.open("sqlite:///:memory:"))
    resolver.resolve([_hours(1, 0, user="u1", anon="a1"), _hours(2, 1, user="u1", anon="a2")])
    # a1 is seen later than a2 now: it leads, although only re-timed.
    later = resolver.resolve([_hours(3, 4, anon="a1")]).customers["m0003"]
    assert later.identifiers["anonymous_id"] == ["a1", "a2"]
    again = resolver.resolve([_hours(4, 6, anon="a2")]).customers["m0004"]
    assert again.identifiers["anonymous_id"] == ["a2", "a1"]
    fresh = IdentityResolver(resolver.store).customer(again.customer_id)
    assert fresh == again  # what the store holds agrees with the cache
    resolver.store.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(random_messages(), random_messages(), st.data())
def test_fast_path_matches_slow_path_on_random_batches(
    monkeypatch: pytest.MonkeyPatch,
    first: list[Message],
    second: list[Message],
    data: st.DataObject,
) -> None:
    # The second part comes hours later, so returning visitors get re-timed.
    later = [
        msg(
            100 + n,
            minutes=(m.timestamp - T0) // timedelta(minutes=1) + 60 * data.draw(st.integers(0, 3)),
            user=m.user_id,
            anon=m.anonymous_id,
            email=m.traits.get("email"),
            kind=m.type if m.type != "alias" else "track",
        )
        for n, m in enumerate(second)
    ]
    ordered = in_event_order([*first, *later])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=3)))
    batches, start = [], 0
    for cut in [*cuts, len(ordered)]:
        batches.append(ordered[start:cut])
        start = cut
    rules = data.draw(
        st.sampled_from(
            [
                IdentitySettings(),
                IdentitySettings(limits={"user_id": 1, "email": 2, "anonymous_id": 2}),
            ]
        )
    )
    cache = data.draw(st.sampled_from([0, 1, 1000]))
    _both(monkeypatch, batches, rules=rules, cache_customers=cache)


def test_event_order_breaks_ties_by_message_id_and_keeps_full_ties_stable() -> None:
    batch = [
        msg(9, anon="a", minutes=5),
        msg(3, anon="b", minutes=7),
        msg(1, anon="c", minutes=5),
        msg(5, anon="d", minutes=1),
        msg(1, anon="e", minutes=5),  # the same messageId and time as "c"
        msg(2, anon="f", minutes=7),
    ]
    expected = sorted(batch, key=lambda m: (m.timestamp, m.message_id))
    assert in_event_order(batch) == expected
    assert [m.anonymous_id for m in in_event_order(batch)] == ["d", "c", "e", "a", "f", "b"]


def _naive(message: Message, norm: Normalizer) -> list[tuple[str, str]]:
    """Every identifier, by the rules written out plainly (no memo), ranked."""
    raws: list[tuple[str, Any]] = [
        ("user_id", message.user_id),
        ("anonymous_id", message.anonymous_id),
    ]
    if message.type == "alias":
        raws.append((norm.settings.alias_previous_id, message.raw.get("previousId")))
    for kind, path in [
        ("email", message.traits.get("email")),
        ("phone", message.traits.get("phone")),
    ]:
        raws.append((kind, path))
    found = {
        (k, v) for k, raw in raws if raw is not None if (v := norm.normalize(k, raw)) is not None
    }
    rank = norm.settings.ranking()
    return sorted(found, key=lambda i: (rank[i[0]], i[1]))


@pytest.mark.parametrize(
    "message",
    [
        msg(1, user="u1", anon="a1", email=" Ann@X.com ", phone="+14155552671"),
        msg(2, user="null", anon="a1", email="ann@x.com"),
        msg(3, kind="alias", previous="p1", anon="a1"),
        msg(4, kind="identify", user="u1", email="test@test.com"),
        msg(5, anon="zz", email="b@x.com", phone="nope"),
        msg(6, kind="identify", user="same", anon="same"),
    ],
)
def test_extract_is_memoized_and_ranked(message: Message) -> None:
    norm = Normalizer.of(IdentitySettings())
    first = extract(message, norm)
    assert list(first) == _naive(message, norm)
    assert extract(message, norm) == first  # from the memos now


@pytest.mark.parametrize("fresh", [False, True])
def test_replaying_a_batch_changes_nothing(fresh: bool) -> None:
    """As after a crash between the identity commit and the batch's bookmark."""
    store = StateStore.open("sqlite:///:memory:")
    batch = [
        _hours(1, 0, anon="a1"),
        _hours(2, 1, user="u1", anon="a1", traits={"first_name": "Ann"}),
        _hours(3, 2, anon="a1"),
        _hours(4, 2, user="u2", anon="a1"),  # refused
    ]
    resolver = IdentityResolver(store)
    first = resolver.resolve(batch)
    before = _store_rows(store)
    again = (IdentityResolver(store) if fresh else resolver).resolve(batch)
    assert again.customers == first.customers
    assert again.merges == {}
    assert [(c.kind, c.value, c.customer_id) for c in again.conflicts] == [
        (c.kind, c.value, c.customer_id) for c in first.conflicts
    ]
    assert _store_rows(store) == before
    store.close()
