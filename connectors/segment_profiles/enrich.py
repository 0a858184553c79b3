"""Which customers to look up in the Profiles API, and what it adds to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from connectors.base import Customer
from connectors.segment_profiles.client import ProfilesClient

KNOWN_KINDS = ("user_id", "email", "phone", "anonymous_id")
"""Segment external id types the local graph keeps (others, e.g. ios.id, are skipped)."""

_TELLING = ("user_id", "email", "phone")


def unresolved(customers: Iterable[Customer]) -> list[Customer]:
    """Customers known only by anonymous ids (no user_id, email or phone), once each."""
    seen: dict[str, Customer] = {}
    for customer in customers:
        if not any(customer.identifiers.get(k) for k in _TELLING):
            seen.setdefault(customer.customer_id, customer)
    return list(seen.values())


async def lookup_identifiers(
    client: ProfilesClient, customers: Sequence[Customer], *, max_lookups: int
) -> dict[str, list[tuple[str, str]]]:
    """customer_id → identifiers Segment knows for it that the customer lacks.

    One lookup per customer (by its first anonymous id), at most `max_lookups`.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    for customer in customers[:max_lookups]:
        anon = customer.first("anonymous_id")
        if anon is None:
            continue
        ids = await client.external_ids("anonymous_id", anon)
        if not ids:
            continue
        have: Mapping[str, Sequence[str]] = customer.identifiers
        new = [
            (x.type, x.id)
            for x in ids
            if x.type in KNOWN_KINDS and x.id not in have.get(x.type, ())
        ]
        if new:
            found[customer.customer_id] = new
    return found
