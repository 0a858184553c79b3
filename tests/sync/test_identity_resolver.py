"""Identity edge cases, each with the expected customers written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mapping.identity import IdentitySettings
from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.identity import identity_conflicts, identity_merges
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg, partition


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_anonymous_then_identified_is_one_customer(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    first = resolver.resolve_batch([msg(1, anon="a1")])
    assert first["m0001"].customer_id == cid("anonymous_id", "a1")

    later = resolver.resolve([msg(2, kind="identify", user="u1", anon="a1", email=" Ann@X.com ")])
    customer = later.customers["m0002"]
    assert customer.customer_id == cid("user_id", "u1")
    assert customer.identifiers == {
        "user_id": ["u1"],
        "email": ["ann@x.com"],
        "anonymous_id": ["a1"],
    }
    assert later.merges == {cid("anonymous_id", "a1"): cid("user_id", "u1")}
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1"), ("anonymous_id", "a1"), ("email", "ann@x.com")}
    }
    # The old id still leads to the customer.
    assert resolver.current_id(cid("anonymous_id", "a1")) == cid("user_id", "u1")
    assert resolver.resolve_batch([msg(3, anon="a1")])["m0003"].customer_id == cid("user_id", "u1")


def test_two_emails_on_one_user(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch(
        [
            msg(1, kind="identify", user="u1", email="old@x.com"),
            msg(2, kind="identify", user="u1", email="new@x.com"),
        ]
    )
    customer = resolver.customer(cid("user_id", "u1"))
    assert customer is not None
    # Most recently seen first: the current address leads.
    assert customer.identifiers["email"] == ["new@x.com", "old@x.com"]
    assert len(partition(store)) == 1


def test_shared_device_does_not_merge_two_people(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    result = resolver.resolve(
        [
            msg(1, kind="identify", user="mum", anon="ipad"),
            msg(2, kind="identify", user="son", anon="ipad"),
        ]
    )
    assert partition(store) == {
        cid("user_id", "mum"): {("user_id", "mum"), ("anonymous_id", "ipad")},
        cid("user_id", "son"): {("user_id", "son")},
    }
    assert result.customers["m0002"].customer_id == cid("user_id", "son")
    [conflict] = result.conflicts
    assert (conflict.kind, conflict.value, conflict.limit_kind, conflict.limit) == (
        "anonymous_id",
        "ipad",
        "user_id",
        1,
    )
    assert conflict.customer_id == cid("user_id", "son")
    assert conflict.other_customer_id == cid("user_id", "mum")
    assert conflict.other == {"user_id": ["mum"], "anonymous_id": ["ipad"]}
    assert "more than 1 user_id" in conflict.reason
    stored = resolver.conflicts()
    assert [(r["kind"], r["value"], r["customer_id"]) for r in stored] == [
        ("anonymous_id", "ipad", cid("user_id", "son"))
    ]
    # Seen again in a later run: no second row for the same conflict.
    IdentityResolver(store).resolve([msg(3, kind="identify", user="son", anon="ipad")])
    with store.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(identity_conflicts)).scalar() == 1
        )


@pytest.mark.parametrize("junk", ["null", "undefined", "test@test.com", "None", "0", "  ", ""])
def test_junk_values_never_merge(store: StateStore, junk: str) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch(
        [
            msg(1, kind="identify", user="u1", email=junk, phone=junk),
            msg(2, kind="identify", user="u2", email=junk, phone=junk),
        ]
    )
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1")},
        cid("user_id", "u2"): {("user_id", "u2")},
    }


def test_configured_junk_and_junk_user_id(store: StateStore) -> None:
    settings = IdentitySettings(ignore_values=["guest@shop.com"])
    resolver = IdentityResolver(store, settings)
    result = resolver.resolve(
        [
            msg(1, user="u1", email="guest@shop.com"),
            msg(2, user="u2", email="GUEST@shop.com"),
            msg(3, user="undefined", anon="null"),
        ]
    )
    assert len(partition(store)) == 2
    assert result.unresolved == ["m0003"]
    assert "m0003" not in result.customers


def test_alias_chain_merges_across_runs(store: StateStore) -> None:
    IdentityResolver(store).resolve_batch([msg(1, anon="a1", email="z@x.com")])
    IdentityResolver(store).resolve_batch([msg(2, kind="alias", previous="a1", anon="a2")])
    IdentityResolver(store).resolve_batch([msg(3, kind="alias", previous="a2", user="u9")])
    assert partition(store) == {
        cid("user_id", "u9"): {
            ("user_id", "u9"),
            ("anonymous_id", "a1"),
            ("anonymous_id", "a2"),
            ("email", "z@x.com"),
        }
    }
    # Every earlier id leads to the final customer, through a flat merge history.
    with store.engine.connect() as conn:
        history = dict(
            conn.execute(
                sa.select(identity_merges.c.from_customer_id, identity_merges.c.into_customer_id)
            ).all()
        )
    assert set(history.values()) == {cid("user_id", "u9")}
    assert cid("email", "z@x.com") in history


def test_email_limit_conflict_keeps_the_extra_address_apart(store: StateStore) -> None:
    settings = IdentitySettings(limits={"user_id": 1, "email": 2})
    resolver = IdentityResolver(store, settings)
    result = resolver.resolve(
        [msg(n, kind="identify", user="u1", email=f"e{n}@x.com") for n in (1, 2, 3)]
    )
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1"), ("email", "e1@x.com"), ("email", "e2@x.com")},
        cid("email", "e3@x.com"): {("email", "e3@x.com")},
    }
    [conflict] = result.conflicts
    assert (conflict.kind, conflict.value, conflict.limit_kind) == ("email", "e3@x.com", "email")


def test_phone_is_normalized_to_e164(store: StateStore) -> None:
    settings = IdentitySettings(phone_default_region="US")
    resolver = IdentityResolver(store, settings)
    resolver.resolve_batch(
        [msg(1, user="u1", phone="(415) 555-2671"), msg(2, anon="a9", phone="+1 415 555 2671")]
    )
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1"), ("phone", "+14155552671"), ("anonymous_id", "a9")}
    }


def test_traits_keep_the_latest_by_event_time(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch(
        [
            msg(5, kind="identify", user="u1", traits={"first_name": "Newer"}),
            msg(1, kind="identify", user="u1", traits={"first_name": "Older", "city": "Oslo"}),
        ]
    )
    IdentityResolver(store).resolve_batch(
        [msg(3, kind="identify", user="u1", traits={"first_name": "Middle", "city": None})]
    )
    customer = resolver.customer(cid("user_id", "u1"))
    assert customer is not None
    assert customer.traits == {"first_name": "Newer", "city": "Oslo"}


def test_learned_esp_ids_join_the_graph(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch([msg(1, anon="a1", email="k@x.com")])
    customer_id = cid("email", "k@x.com")
    assert resolver.learn(customer_id, {"klaviyo_profile_id": "01HPROFILE"}) == []
    # A message that only knows the profile id finds the same customer.
    assert partition(store) == {
        customer_id: {
            ("anonymous_id", "a1"),
            ("email", "k@x.com"),
            ("klaviyo_profile_id", "01HPROFILE"),
        }
    }
    # A second, different profile id for the same customer breaks the limit of one.
    conflicts = resolver.learn(customer_id, {"klaviyo_profile_id": "01HOTHER"})
    assert [(c.kind, c.value, c.limit_kind) for c in conflicts] == [
        ("klaviyo_profile_id", "01HOTHER", "klaviyo_profile_id")
    ]


def test_learn_follows_merges(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch([msg(1, anon="a1")])
    resolver.resolve_batch([msg(2, user="u1", anon="a1")])
    resolver.learn(cid("anonymous_id", "a1"), {"mailchimp_subscriber_hash": "ABC123"})
    assert ("mailchimp_subscriber_hash", "abc123") in partition(store)[cid("user_id", "u1")]


def test_order_within_a_run_does_not_matter(tmp_path: Path) -> None:
    messages = [
        msg(1, anon="a1"),
        msg(2, user="u1", anon="a1"),
        msg(3, anon="a2", email="b@x.com"),
        msg(4, user="u1", email="b@x.com"),
        msg(5, user="u2", anon="a2"),  # refused: a2 already belongs to u1
    ]
    results = []
    for name, order in (("fwd", messages), ("rev", messages[::-1])):
        s = StateStore.open(f"sqlite:///{tmp_path / name}.db")
        IdentityResolver(s).resolve_batch(order)
        results.append(partition(s))
        s.close()
    assert results[0] == results[1]
    assert results[0] == {
        cid("user_id", "u1"): {
            ("user_id", "u1"),
            ("anonymous_id", "a1"),
            ("anonymous_id", "a2"),
            ("email", "b@x.com"),
        },
        cid("user_id", "u2"): {("user_id", "u2")},
    }


def test_dry_run_resolves_without_writing(store: StateStore) -> None:
    resolver = IdentityResolver(store)
    resolver.resolve_batch([msg(1, user="u1", anon="a1")])
    dry = resolver.resolve([msg(2, user="u1", email="new@x.com")], persist=False)
    assert dry.customers["m0002"].identifiers["email"] == ["new@x.com"]
    assert partition(store) == {cid("user_id", "u1"): {("user_id", "u1"), ("anonymous_id", "a1")}}


def test_concurrent_writers_take_turns(tmp_path: Path) -> None:
    """Two syncs resolving at once (separate stores, one file) lose no merge."""
    import threading

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    StateStore.open(url).close()
    batches = [
        [msg(n, user="u1", anon=f"a{n}", email=f"e{n % 3}@x.com") for n in range(0, 40, 2)],
        [msg(n, user="u1", anon=f"a{n}", traits={"n": n}) for n in range(1, 40, 2)],
    ]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(batch: list[Message]) -> None:
        store = StateStore.open(url)
        try:
            start.wait()
            for one in batch:
                IdentityResolver(store).resolve_batch([one])
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = StateStore.open(url)
    expected = {("user_id", "u1")} | {("anonymous_id", f"a{n}") for n in range(40)}
    expected |= {("email", f"e{n}@x.com") for n in range(3)}
    assert partition(check) == {cid("user_id", "u1"): expected}
    customer = IdentityResolver(check).customer(cid("user_id", "u1"))
    assert customer is not None
    assert customer.traits["n"] == 39
    check.close()


def test_a_conflict_s_customer_ids_lead_to_customers_however_the_batch_was_split(
    tmp_path: Path,
) -> None:
    """A conflict names the customers as they are at that message; a later message of
    the batch may rename one (a user id joins). One run or three, the ids must lead to
    the same stored customers."""
    settings = IdentitySettings(limits={"email": 1})
    messages = [
        msg(1, kind="identify", user="mum", email="m@x.com", anon="ipad"),
        msg(2, kind="identify", anon="ipad", email="son@x.com"),  # refused: mum has one
        msg(3, kind="identify", user="son", email="son@x.com"),  # renames son's side
    ]
    finals = []
    for split in ([messages], [[m] for m in messages]):
        store = StateStore.open(f"sqlite:///{tmp_path / f'{len(split)}.db'}")
        resolver = IdentityResolver(store, settings)
        conflicts = [c for batch in split for c in resolver.resolve(batch).conflicts]
        [conflict] = conflicts
        ids = (conflict.customer_id, conflict.other_customer_id or "")
        current = tuple(resolver.current_id(i) for i in ids)
        assert all(resolver.customer(i) is not None for i in current), (split, ids)
        finals.append(current)
        store.close()
    assert finals[0] == finals[1]
    assert cid("user_id", "son") in finals[0]
