"""The identity store on PostgreSQL gives what it gives on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.identity import (
    identity_conflicts,
    identity_customers,
    identity_identifiers,
    identity_merges,
)
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg, partition

pytestmark = pytest.mark.postgres

MESSAGES = [
    msg(1, anon="a1", email="Ann@X.com"),
    msg(2, kind="identify", user="u1", anon="a1", traits={"first_name": "Ann"}),
    msg(3, kind="identify", user="u2", anon="a1"),  # refused: a1 belongs to u1
    msg(4, kind="alias", previous="a7", user="u2"),
    msg(5, anon="a7", phone="+14155552671"),
]


def run(store: StateStore, batches: list[list[Message]]) -> None:
    for batch in batches:
        IdentityResolver(store).resolve_batch(batch)
    IdentityResolver(store).learn(cid("user_id", "u1"), {"klaviyo_profile_id": "01HK"})


def test_postgres_matches_sqlite(postgres_url: str, tmp_path: Path) -> None:
    pg = StateStore.open(postgres_url)
    with pg.engine.begin() as conn:
        for table in (
            identity_identifiers,
            identity_customers,
            identity_merges,
            identity_conflicts,
        ):
            conn.execute(sa.delete(table))
    lite = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    run(pg, [MESSAGES[:2], MESSAGES[2:]])
    run(lite, [MESSAGES])
    expected = {
        cid("user_id", "u1"): {
            ("user_id", "u1"),
            ("anonymous_id", "a1"),
            ("email", "ann@x.com"),
            ("klaviyo_profile_id", "01HK"),
        },
        cid("user_id", "u2"): {
            ("user_id", "u2"),
            ("anonymous_id", "a7"),
            ("phone", "+14155552671"),
        },
    }
    assert partition(pg) == partition(lite) == expected
    resolver = IdentityResolver(pg)
    customer = resolver.customer(cid("user_id", "u1"))
    assert customer is not None
    assert customer.customer_id == cid("user_id", "u1")
    assert customer.traits == {"first_name": "Ann", "email": "Ann@X.com"}
    assert [(c["kind"], c["value"]) for c in resolver.conflicts()] == [("anonymous_id", "a1")]
    pg.close()
    lite.close()
