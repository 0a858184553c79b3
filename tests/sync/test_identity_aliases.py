"""Alias calls between two user ids (`alias_previous_id = "user_id"`): a rename, not a conflict.

Each scenario runs as one batch, as one run per message with a fresh resolver each
(separate `espbridge run` invocations, so a stored former id must be looked up), and
as one run per message with one resolver (its cache kept between batches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Customer
from mapping.identity import IdentitySettings, esp_key
from mapping.types import Message
from sync.identity import IdentityResolver, Resolution
from sync.store.identity import identity_conflicts
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg, partition

RULES = IdentitySettings(alias_previous_id="user_id")
NEW = cid("user_id", "new")
OLD = cid("user_id", "old")

Runner = Callable[[Sequence[Message]], dict[str, Customer]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture(params=["one run", "run per message", "run per message, one resolver"])
def run(request: pytest.FixtureRequest, store: StateStore) -> Runner:
    """Resolves messages (in the given order) and returns messageId → final customer."""
    split = request.param != "one run"
    shared = IdentityResolver(store, RULES) if request.param.endswith("resolver") else None

    def resolve(messages: Sequence[Message]) -> dict[str, Customer]:
        results: list[Resolution] = []
        for batch in [[m] for m in messages] if split else [list(messages)]:
            resolver = shared or IdentityResolver(store, RULES)
            results.append(resolver.resolve(batch))
        final = IdentityResolver(store, RULES)
        out: dict[str, Customer] = {}
        for result in results:
            for message_id, customer in result.customers.items():
                current = final.customer(customer.customer_id)
                assert current is not None, f"{customer.customer_id} leads nowhere"
                out[message_id] = current
        return out

    return resolve


def conflicts(store: StateStore) -> list[tuple[str, str, str, str]]:
    t = identity_conflicts
    with store.engine.connect() as conn:
        query = sa.select(t.c.kind, t.c.value, t.c.customer_id, t.c.other_customer_id)
        return [(k, v, c, o) for k, v, c, o in conn.execute(query)]


def test_alias_renames_a_known_user_id(run: Runner, store: StateStore) -> None:
    customers = run(
        [
            msg(1, kind="identify", user="old", email="ann@x.com"),
            msg(2, kind="alias", previous="old", user="new"),
            msg(3, user="old"),  # a device still signed in with the old id
            msg(4, user="new"),
        ]
    )
    assert {c.customer_id for c in customers.values()} == {NEW}
    ann = customers["m0004"]
    assert ann.identifiers == {
        "user_id": ["new"],
        "former_user_id": ["old"],
        "email": ["ann@x.com"],
    }
    assert esp_key(RULES, "klaviyo", ann.identifiers) == ("user_id", "new")
    assert partition(store) == {
        NEW: {("user_id", "new"), ("former_user_id", "old"), ("email", "ann@x.com")}
    }
    assert conflicts(store) == []


def test_alias_joins_two_known_customers(run: Runner, store: StateStore) -> None:
    customers = run(
        [
            msg(1, kind="identify", user="old", email="ann@x.com"),
            msg(2, kind="identify", user="new", email="ann@work.com"),
            msg(3, kind="alias", previous="old", user="new"),
            msg(4, user="old"),
        ]
    )
    assert {c.customer_id for c in customers.values()} == {NEW}
    assert customers["m0004"].identifiers["user_id"] == ["new"]
    assert conflicts(store) == []


def test_a_second_alias_from_another_old_id_joins_too(run: Runner, store: StateStore) -> None:
    customers = run(
        [
            msg(1, kind="identify", user="old1", email="a@x.com"),
            msg(2, kind="identify", user="old2", phone="+14155550100"),
            msg(3, kind="alias", previous="old1", user="new"),
            msg(4, kind="alias", previous="old2", user="new"),
            msg(5, user="old1"),
            msg(6, user="old2"),
        ]
    )
    assert {c.customer_id for c in customers.values()} == {NEW}
    assert customers["m0006"].identifiers["user_id"] == ["new"]
    assert sorted(customers["m0006"].identifiers["former_user_id"]) == ["old1", "old2"]
    assert conflicts(store) == []


def test_an_alias_chain_keeps_the_latest_id(run: Runner, store: StateStore) -> None:
    customers = run(
        [
            msg(1, user="v1"),
            msg(2, kind="alias", previous="v1", user="v2"),
            msg(3, kind="alias", previous="v2", user="v3"),
            msg(4, user="v1"),
            msg(5, user="v2"),
        ]
    )
    assert {c.customer_id for c in customers.values()} == {cid("user_id", "v3")}
    assert customers["m0005"].identifiers["user_id"] == ["v3"]
    assert sorted(customers["m0005"].identifiers["former_user_id"]) == ["v1", "v2"]


def test_an_old_id_that_moved_on_is_not_renamed_again(run: Runner, store: StateStore) -> None:
    """old became other; an alias old → new would give one customer two user ids."""
    customers = run(
        [
            msg(1, user="old"),
            msg(2, kind="alias", previous="old", user="other"),
            msg(3, kind="identify", user="new", email="new@x.com"),
            msg(4, kind="alias", previous="old", user="new"),
            msg(5, user="old"),
        ]
    )
    other = cid("user_id", "other")
    assert customers["m0005"].customer_id == other
    assert customers["m0004"].customer_id == NEW
    assert partition(store) == {
        other: {("user_id", "other"), ("former_user_id", "old")},
        NEW: {("user_id", "new"), ("email", "new@x.com")},
    }
    # Refused and recorded, as any merge that would break a limit.
    assert conflicts(store) == [("former_user_id", "old", NEW, other)]


def test_an_alias_back_to_a_former_id_keeps_the_current_one(run: Runner) -> None:
    customers = run(
        [
            msg(1, kind="alias", previous="old", user="new"),
            msg(2, kind="alias", previous="new", user="old"),
        ]
    )
    assert customers["m0002"].identifiers == {"user_id": ["new"], "former_user_id": ["old"]}


def test_an_alias_to_itself_or_without_user_id_is_not_a_rename(run: Runner) -> None:
    customers = run(
        [
            msg(1, kind="alias", previous="u1", user="u1"),
            msg(2, kind="alias", previous="u2", anon="a2"),
        ]
    )
    assert customers["m0001"].identifiers == {"user_id": ["u1"]}
    assert customers["m0002"].identifiers == {"user_id": ["u2"], "anonymous_id": ["a2"]}


def test_two_user_ids_without_an_alias_still_conflict(store: StateStore) -> None:
    resolver = IdentityResolver(store, RULES)
    resolver.resolve_batch([msg(1, user="mum", anon="ipad"), msg(2, user="son", anon="ipad")])
    son, mum = cid("user_id", "son"), cid("user_id", "mum")
    assert conflicts(store) == [("anonymous_id", "ipad", son, mum)]


def test_replaying_an_alias_batch_changes_nothing(store: StateStore) -> None:
    batch = [
        msg(1, kind="identify", user="old", email="ann@x.com"),
        msg(2, kind="alias", previous="old", user="new"),
        msg(3, user="old"),
    ]
    IdentityResolver(store, RULES).resolve_batch(batch)
    before = partition(store)
    again = IdentityResolver(store, RULES).resolve(batch)
    assert partition(store) == before
    assert {c.customer_id for c in again.customers.values()} == {NEW}
    assert again.merges == {}


def test_dry_run_of_an_alias_writes_nothing(store: StateStore) -> None:
    IdentityResolver(store, RULES).resolve_batch([msg(1, user="old")])
    preview = IdentityResolver(store, RULES).resolve(
        [msg(2, kind="alias", previous="old", user="new")], persist=False
    )
    assert preview.customers["m0002"].identifiers == {
        "user_id": ["new"],
        "former_user_id": ["old"],
    }
    assert partition(store) == {OLD: {("user_id", "old")}}
