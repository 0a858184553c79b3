"""The resolver's in-process cache never hides another writer's changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.identity import IdentityResolver
from sync.store import identity as store_identity
from sync.store.identity_cache import CachedCustomer, GraphCache
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg, partition


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_second_resolver_sees_the_firsts_merges(store: StateStore) -> None:
    first, second = IdentityResolver(store), IdentityResolver(store)
    first.resolve_batch([msg(1, anon="a1")])
    second.resolve_batch([msg(2, anon="a2")])  # both now cache their own customer
    first.resolve_batch([msg(3, user="u1", anon="a2")])  # merges a2 into u1
    result = second.resolve([msg(4, anon="a2", email="z@x.com")])
    customer = result.customers["m0004"]
    assert customer.customer_id == cid("user_id", "u1")
    assert customer.identifiers == {
        "user_id": ["u1"],
        "email": ["z@x.com"],
        "anonymous_id": ["a2"],
    }
    assert partition(store) == {
        cid("anonymous_id", "a1"): {("anonymous_id", "a1")},
        cid("user_id", "u1"): {("user_id", "u1"), ("anonymous_id", "a2"), ("email", "z@x.com")},
    }


def test_interleaved_writers_agree_with_one_writer(tmp_path: Path) -> None:
    messages = [
        msg(1, anon="a1", email="ann@x.com"),
        msg(2, user="u1", anon="a1"),
        msg(3, anon="a2", email="ann@x.com", traits={"first_name": "Ann"}),
        msg(4, user="u2", anon="a3"),
        msg(5, kind="alias", previous="a3", anon="a4"),
        msg(6, user="u2", anon="a1"),  # refused: a1 belongs to u1
        msg(7, anon="a4", traits={"first_name": "Bo"}),
        msg(8, user="u1", traits={"first_name": "Annie"}),
    ]
    alone = StateStore.open(f"sqlite:///{tmp_path / 'alone.db'}")
    shared = StateStore.open(f"sqlite:///{tmp_path / 'shared.db'}")
    one = IdentityResolver(alone)
    two = [IdentityResolver(shared), IdentityResolver(shared)]
    for n, message in enumerate(messages):
        one.resolve_batch([message])
        two[n % 2].resolve_batch([message])
    assert partition(shared) == partition(alone)
    for name in ("u1", "u2"):
        assert two[0].customer(cid("user_id", name)) == one.customer(cid("user_id", name))
    alone.close()
    shared.close()


def test_learn_by_another_resolver_is_seen(store: StateStore) -> None:
    batch, esp = IdentityResolver(store), IdentityResolver(store)
    batch.resolve_batch([msg(1, user="u1")])
    esp.learn(cid("user_id", "u1"), {"klaviyo_profile_id": "01HK"})
    customer = batch.resolve_batch([msg(2, user="u1")])["m0002"]
    assert customer.identifiers["klaviyo_profile_id"] == ["01HK"]
    # Its own learn keeps the cache: the next batch sees the id without another writer.
    batch.learn(cid("user_id", "u1"), {"mailchimp_subscriber_hash": "abc"})
    customer = batch.resolve_batch([msg(3, user="u1")])["m0003"]
    assert customer.identifiers["mailchimp_subscriber_hash"] == ["abc"]


def test_failed_batch_empties_the_cache(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch([msg(1, user="u1", anon="a1")])

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    # The batch's last write fails, after every other write of the batch was made.
    with monkeypatch.context() as patch:
        patch.setattr(store_identity, "_record_conflicts", broken)
        with pytest.raises(RuntimeError):
            resolver.resolve_batch([msg(2, user="u1", email="new@x.com")])
    # Nothing of the failed batch was stored, and the resolver does not pretend it was.
    customer = resolver.resolve_batch([msg(3, user="u1")])["m0003"]
    assert "email" not in customer.identifiers
    assert partition(store) == {cid("user_id", "u1"): {("user_id", "u1"), ("anonymous_id", "a1")}}


def test_small_cache_evicts_whole_customers(store: StateStore) -> None:
    resolver = IdentityResolver(store, cache_customers=2)
    for n in range(6):
        resolver.resolve_batch([msg(n, user=f"u{n}", anon=f"a{n}")])
    # u0 was evicted long ago and is read back from the store, whole.
    result = resolver.resolve([msg(10, anon="a0", email="e@x.com")])
    assert result.customers["m0010"].identifiers == {
        "user_id": ["u0"],
        "email": ["e@x.com"],
        "anonymous_id": ["a0"],
    }
    assert len(partition(store)) == 6


def test_dry_run_leaves_the_cache_alone(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch([msg(1, user="u1")])
    resolver.resolve([msg(2, user="u1", email="dry@x.com")], persist=False)
    customer = resolver.resolve_batch([msg(3, user="u1")])["m0003"]
    assert "email" not in customer.identifiers


def test_commit_evicts_the_least_recently_used_first() -> None:
    cache = GraphCache(limit=2)
    cache.begin(1)
    for name in ("c1", "c2", "c3", "c4"):
        ident = ("user_id", name)
        cache.stage(name, CachedCustomer((ident,), "{}", "{}"), [(ident, 0, 0)])
    cache.commit(1)  # four written in one turn: the two written first go
    assert list(cache.customers) == ["c3", "c4"]
    assert set(cache.owner) == {("user_id", "c3"), ("user_id", "c4")}
    cache.begin(2)
    cache.use(["c3"])  # used by this turn: now the most recent
    ident = ("user_id", "c5")
    cache.stage("c5", CachedCustomer((ident,), "{}", "{}"), [(ident, 0, 0)])
    cache.commit(2)
    assert list(cache.customers) == ["c3", "c5"]
    assert cache.complete is False
