"""A bounded, in-process copy of recently used customers of the identity graph.

Valid only while this process is the graph's one writer: every writer bumps the
`identity_lock` version while it holds the write turn, so a resolver that takes the
turn and finds the version one past the one it committed last knows nobody else wrote
in between. Any other version (another process or resolver wrote, or this one failed
mid-batch) empties the cache, and the customers are read from the store again.

Entries hold what the store holds (identifier times and the stored traits JSON), so a
customer built from the cache is the same as one loaded from the store. Whole
customers are cached and evicted, least recently used first; an identifier absent
from the cache is looked up in the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from mapping.identity.identifiers import Identifier

DEFAULT_CUSTOMERS = 50_000
"""Cached customers per resolver; the rest of the graph stays in the store."""


class CachedCustomer(NamedTuple):
    """A stored customer: (identifier, first seen, last seen)s, and its traits JSON.

    Only tuples, strings and datetimes: the garbage collector stops tracking such
    entries, so a large cache does not make every collection slower.
    """

    identifiers: tuple[tuple[Identifier, datetime, datetime], ...]
    traits: str
    trait_stamps: str


@dataclass(slots=True)
class GraphCache:
    """Customers by id and identifiers → customer id, as of `version` of the store."""

    limit: int = DEFAULT_CUSTOMERS
    version: int | None = None
    customers: dict[str, CachedCustomer] = field(default_factory=dict)
    owner: dict[Identifier, str] = field(default_factory=dict)
    _pending: list[tuple[str, CachedCustomer | None]] = field(default_factory=list)

    def begin(self, version: int) -> None:
        """Start a write turn that bumped the store to `version`.

        Keeps the cache only when the last committed turn was this cache's own.
        """
        self._pending.clear()
        if self.version is None or version != self.version + 1:
            self.clear()

    def clear(self) -> None:
        """Forget everything (the next turn reads the store)."""
        self.customers.clear()
        self.owner.clear()
        self._pending.clear()
        self.version = None

    def lookup(
        self, identifiers: Iterable[Identifier]
    ) -> tuple[dict[str, CachedCustomer], list[Identifier]]:
        """Cached customers holding any of `identifiers`, and the identifiers not cached."""
        found: dict[str, CachedCustomer] = {}
        missing: list[Identifier] = []
        owner, customers = self.owner, self.customers
        for ident in identifiers:
            cid = owner.get(ident)
            if cid is None:
                missing.append(ident)
            elif cid not in found:
                # Re-insert: dicts keep insertion order, so the oldest are evicted first.
                found[cid] = customers[cid] = customers.pop(cid)
        return found, missing

    def put(self, customer_id: str, customer: CachedCustomer) -> None:
        """Cache a customer as the store holds it now (read within this turn)."""
        self._drop(customer_id)
        self.customers[customer_id] = customer
        owner = self.owner
        for ident, _first, _last in customer.identifiers:
            owner[ident] = customer_id

    def stage(self, customer_id: str, customer: CachedCustomer | None) -> None:
        """Record a write of this turn (None: the customer was merged away)."""
        self._pending.append((customer_id, customer))

    def commit(self, version: int) -> None:
        """The turn's transaction committed: apply its writes, then trim to `limit`."""
        for customer_id, customer in self._pending:
            if customer is None:
                self._drop(customer_id)
        for customer_id, customer in self._pending:
            if customer is not None:
                self.put(customer_id, customer)
        self._pending.clear()
        self.version = version
        customers = self.customers
        while len(customers) > self.limit:
            self._drop(next(iter(customers)))

    def _drop(self, customer_id: str) -> None:
        held = self.customers.pop(customer_id, None)
        if held is None:
            return
        owner = self.owner
        for ident, _first, _last in held.identifiers:
            if owner.get(ident) == customer_id:
                del owner[ident]
