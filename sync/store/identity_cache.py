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

Layout, chosen for the garbage collector as much as for lookups: `owner` maps each
identifier to a plain (customer id, first seen, last seen) tuple, and `customers` each
customer id to its identifiers and traits JSON. Tuples of strings and integers are not
tracked by the collector, so a large cache does not make collections slower, and
re-timing an identifier replaces one tuple rather than building a customer. The one
tracked part is `built`, the `Customer` last handed out per entry, kept so a customer
no batch changes is not built again.

A write turn changes `owner` times and `built` in place as it resolves (the graph
re-times identifiers there); everything else it stages and applies at commit. A turn
that fails empties the cache, so neither ever outlives a rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

from mapping.identity.component import Known
from mapping.identity.identifiers import Identifier

DEFAULT_CUSTOMERS = 50_000
"""Cached customers per resolver; the rest of the graph stays in the store."""

Times = Iterable[tuple[Identifier, int, int]]
"""(identifier, first seen, last seen) per identifier of a customer, epoch µs."""


class CachedCustomer(NamedTuple):
    """A stored customer: its identifiers and its traits JSON (times are in `owner`)."""

    identifiers: tuple[Identifier, ...]
    traits: str
    trait_stamps: str


@dataclass(slots=True)
class GraphCache:
    """Customers by id and identifiers → (customer id, first, last seen), as of `version`.

    `owner` doubles as what the identity graph knows of stored identifiers
    (`IdentityGraph.attach`): it holds every identifier of every cached customer.
    """

    limit: int = DEFAULT_CUSTOMERS
    version: int | None = None
    customers: dict[str, CachedCustomer] = field(default_factory=dict)
    owner: dict[Identifier, Known] = field(default_factory=dict)
    built: dict[str, Any] = field(default_factory=dict)
    """Customer id → the `connectors.base.Customer` built from its entry."""
    complete: bool | None = None
    """True when the cache holds every stored customer (it started on an empty graph and
    evicted nothing since), so an identifier it does not hold is not stored at all and
    need not be looked up; None until checked (`sync.store.identity.load_components`)."""
    _pending: list[tuple[str, CachedCustomer | None, Any, Any]] = field(default_factory=list)
    _used: list[str] = field(default_factory=list)

    def begin(self, version: int) -> None:
        """Start a write turn that bumped the store to `version`.

        Keeps the cache only when the last committed turn was this cache's own.
        """
        self._pending.clear()
        self._used.clear()
        if self.version is None or version != self.version + 1:
            self.clear()
            self.complete = None

    def clear(self) -> None:
        """Forget everything (the next turn reads the store)."""
        self.customers.clear()
        self.owner.clear()
        self.built.clear()
        self._pending.clear()
        self._used.clear()
        self.version = None
        self.complete = None

    def missing(self, identifiers: Iterable[Identifier]) -> set[Identifier]:
        """Those of `identifiers` no cached customer holds."""
        owner = self.owner
        return {ident for ident in identifiers if ident not in owner}

    def put(
        self, customer_id: str, customer: CachedCustomer, times: Times, built: Any = None
    ) -> None:
        """Cache a customer as the store holds it now (read within this turn)."""
        held = self.customers.pop(customer_id, None)
        if held is not None and len(held.identifiers) > len(customer.identifiers):
            # A customer only gains identifiers; anything else is dropped in full first.
            self.customers[customer_id] = held
            self._drop(customer_id)
        self.customers[customer_id] = customer  # re-inserted: evicted last
        if built is not None:
            self.built[customer_id] = built
        else:
            self.built.pop(customer_id, None)
        owner = self.owner  # every identifier of the entry is (re)written below
        for ident, first, last in times:
            owner[ident] = (customer_id, first, last)

    def stage(
        self,
        customer_id: str,
        customer: CachedCustomer | None,
        times: Times = (),
        built: Any = None,
    ) -> None:
        """Record a write of this turn (None: the customer was merged away).

        `built` is the `Customer` of the written entry, if one was built.
        """
        self._pending.append((customer_id, customer, times, built))

    def use(self, customer_ids: Iterable[str]) -> None:
        """Mark customers used by this turn: they are evicted last (applied at commit)."""
        self._used.extend(customer_ids)

    def commit(self, version: int) -> None:
        """The turn's transaction committed: apply its writes, then trim to `limit`."""
        customers = self.customers
        for customer_id in self._used:
            # Re-insert: dicts keep insertion order, so the oldest are evicted first.
            held = customers.pop(customer_id, None)
            if held is not None:
                customers[customer_id] = held
        for customer_id, customer, _times, _built in self._pending:
            if customer is None:
                self._drop(customer_id)
        for customer_id, customer, times, built in self._pending:
            if customer is not None:
                self.put(customer_id, customer, times, built)
        self._pending.clear()
        self._used.clear()
        self.version = version
        excess = len(customers) - self.limit
        if excess > 0:
            # The oldest, found in one pass: `next(iter(...))` per eviction rescans the
            # slots earlier pops left empty at the front, quadratic once the cache is full.
            for customer_id in list(islice(customers, excess)):
                self._drop(customer_id)
            self.complete = False

    def _drop(self, customer_id: str) -> None:
        held = self.customers.pop(customer_id, None)
        self.built.pop(customer_id, None)
        if held is None:
            return
        owner = self.owner
        for ident in held.identifiers:
            known = owner.get(ident)
            if known is not None and known[0] == customer_id:
                del owner[ident]
