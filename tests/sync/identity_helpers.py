"""Helpers for the identity tests: message factory, table readers, hand-computed ids."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mapping.message import parse_message
from mapping.types import Message
from sync.store.identity import follow, identity_customers, identity_identifiers, identity_merges
from sync.store.state import StateStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def msg(
    n: int,
    *,
    kind: str = "track",
    user: str | None = None,
    anon: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    previous: str | None = None,
    traits: dict[str, Any] | None = None,
    minutes: int | None = None,
) -> Message:
    """Message number n (its messageId is m{n:04}; its time T0 + n minutes by default)."""
    raw: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{n:04}",
        "timestamp": (T0 + timedelta(minutes=n if minutes is None else minutes)).isoformat(),
    }
    if user is not None:
        raw["userId"] = user
    if anon is not None:
        raw["anonymousId"] = anon
    if previous is not None:
        raw["previousId"] = previous
    all_traits = dict(traits or {})
    if email is not None:
        all_traits["email"] = email
    if phone is not None:
        all_traits["phone"] = phone
    if kind == "track":
        raw["event"] = "Viewed"
        raw["context"] = {"traits": all_traits}
    elif all_traits:
        raw["traits"] = all_traits
    return parse_message(raw, f"test:{n}")


def cid(kind: str, value: str) -> str:
    """The customer id a component gets when (kind, value) is its first identifier."""
    return "cus_" + hashlib.blake2b(f"{kind}\x1f{value}".encode(), digest_size=10).hexdigest()


def partition(store: StateStore) -> dict[str, frozenset[tuple[str, str]]]:
    """customer_id → its identifiers, read straight from the table."""
    t = identity_identifiers
    out: dict[str, set[tuple[str, str]]] = {}
    with store.engine.connect() as conn:
        for customer, kind, value in conn.execute(sa.select(t.c.customer_id, t.c.kind, t.c.value)):
            out.setdefault(customer, set()).add((kind, value))
    return {k: frozenset(v) for k, v in out.items()}


def fates(store: StateStore, customer_ids: Iterable[str]) -> dict[str, str]:
    """Each customer id → the customer it leads to now (through `identity_merges`)."""
    with store.engine.connect() as conn:
        return {customer: follow(conn, customer) for customer in customer_ids}


def merged_from(store: StateStore) -> dict[str, str]:
    """identity_merges as stored: customer id that stopped existing → where it went."""
    t = identity_merges
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(t.c.from_customer_id, t.c.into_customer_id)).all())


def live(store: StateStore) -> set[str]:
    """Ids of the customers that exist now (`identity_customers`)."""
    t = identity_customers
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(t.c.customer_id)).scalars())
