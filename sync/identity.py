"""The persisted identity resolver the engine calls once per source batch.

It looks up in the state store only the customers a batch touches (through a bounded
cache, `sync.store.identity_cache`), merges the batch's identifiers in event-time order
(`mapping.identity.IdentityGraph`), and writes back only what changed, the merge
history and any refused merges, in one transaction. Replaying a batch (after a crash
before its bookmark was stored) changes nothing: every step is idempotent.

Most messages come from returning visitors: identifiers all known, of one customer.
Those never build the customer in the graph (`IdentityGraph.observe_known`): at most
their last seen moves, which is one UPDATE per identifier. Per message the hot path
allocates nothing the garbage collector tracks (shared identifier tuples, parallel
lists), since every object kept alive during a batch makes each collection slower.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from operator import attrgetter, eq
from typing import Any

import orjson
import sqlalchemy as sa

from connectors.base import Customer
from connectors.segment_profiles import ProfilesClient, lookup_identifiers, unresolved
from mapping.identity import Conflict, IdentityGraph, IdentitySettings, Normalizer, extract
from mapping.identity.aliases import twins
from mapping.identity.component import HOUR_US, by_kind, from_us, hour_us
from mapping.identity.graph import Component, Place, customer_id_for
from mapping.identity.identifiers import Identifier
from mapping.types import Message
from sync.store.identity import (
    follow,
    identifiers_of,
    load_components,
    lock_graph,
    stored_conflicts,
    write_changes,
)
from sync.store.identity_cache import DEFAULT_CUSTOMERS, GraphCache
from sync.store.state import StateStore

_TIME = attrgetter("timestamp")
_MESSAGE_ID = attrgetter("message_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Resolution:
    """What one batch resolved to.

    Attributes:
        customers: messageId → its customer (messages with only junk ids are absent).
        conflicts: Merges a limit refused in this batch (also stored).
        merges: Old customer id → the id it was merged into, in this batch.
        unresolved: messageIds with no usable identifier.
    """

    customers: dict[str, Customer] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    merges: dict[str, str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)


class IdentityResolver:
    """Resolves messages to customers against the graph in the state store."""

    def __init__(
        self,
        store: StateStore,
        settings: IdentitySettings | None = None,
        *,
        cache_customers: int = DEFAULT_CUSTOMERS,
    ) -> None:
        """A resolver over `store`'s graph.

        Args:
            store: The state store holding the graph.
            settings: The identity rules (defaults when None).
            cache_customers: Most recently used customers kept in memory between
                batches (see `sync.store.identity_cache`); 0 reads every batch's
                customers from the store.
        """
        self.store = store
        self.settings = settings or IdentitySettings()
        self.normalizer = Normalizer.of(self.settings)
        self._cache = GraphCache(limit=cache_customers)
        self._writing = threading.Lock()  # one write turn at a time owns the cache

    # public ------------------------------------------------------------------------

    def resolve_batch(self, messages: Sequence[Message]) -> dict[str, Customer]:
        """messageId → `Customer` for a batch (see `resolve` for conflicts and merges)."""
        return self.resolve(messages).customers

    def resolve(self, messages: Sequence[Message], *, persist: bool = True) -> Resolution:
        """Merge a batch's identifiers into the graph and say who each message is about.

        Messages are processed in event-time order (ties by messageId), whatever order
        they come in, so the result does not depend on it.

        Args:
            messages: The batch.
            persist: False for a dry run: resolve against the stored graph, write nothing.
        """
        ordered = in_event_order(messages)
        normalizer = self.normalizer
        found = [extract(m, normalizer) for m in ordered]
        graph = IdentityGraph(self.settings)
        result = Resolution()
        with self._turn(persist) as conn:
            cache = self._cache if persist else None
            base = load_components(conn, graph, chain.from_iterable(found), cache)
            if self.settings.alias_previous_id == "user_id" and not base.complete:
                # What one run would find in memory: a user id renamed by an alias in
                # an earlier run, stored as former, and the other way round.
                renamed = twins(base.missing(chain.from_iterable(found)))
                if renamed:
                    load_components(conn, graph, renamed, cache)
            spots = self._observe(graph, ordered, found)
            customers = _Customers(graph, base)
            result.merges = write_changes(
                self.store, conn, graph, persist=persist, cache=cache, build=customers.changed
            )
            result.customers = customers.of(ordered, spots, result.unresolved)
            if persist:
                base.use(customers.used)
        result.conflicts = list(graph.conflicts)
        return result

    def _observe(
        self,
        graph: IdentityGraph,
        ordered: Sequence[Message],
        found: Sequence[Sequence[Identifier]],
    ) -> list[Place | None]:
        """Feed the graph the batch in order; where each message went (None: no ids).

        A message without traits whose identifiers all belong to one customer already
        (most messages: a returning visitor) at most re-times them
        (`IdentityGraph.observe_known`), which is far cheaper than observing it. Nothing
        here allocates per message beyond what the graph must keep: every object kept
        alive makes the garbage collector's next pass slower.
        """
        track = self.settings.track_traits
        known, observe = graph.observe_known, graph.observe_ranked
        spots: list[Place | None] = []
        append = spots.append
        for message, ids in zip(ordered, found, strict=True):
            if not ids:
                append(None)
                continue
            at = message.timestamp
            if at.tzinfo is UTC:  # `hour_us`, inline: it is computed for every message
                delta = at - _EPOCH
                hour = (delta.days * 24 + delta.seconds // 3600) * HOUR_US
            else:
                hour = hour_us(at)
            traits = message.traits
            if not traits or not track:
                spot = known(ids, hour)
                if spot is not None:
                    append(spot)
                    continue
            append(observe(ids, at, hour, message.message_id, traits))
        return spots

    def learn(
        self,
        customer_id: str,
        learned_ids: Mapping[str, str] | Sequence[tuple[str, str]],
        at: datetime | None = None,
    ) -> list[Conflict]:
        """Add identifiers an ESP told us (`Outcome.learned_ids`) to a customer.

        Args:
            customer_id: The customer the record was for (followed through merges).
            learned_ids: e.g. {"klaviyo_profile_id": "01H…"}, or (kind, value) pairs.
            at: Event time of the record; defaults to the customer's last activity.

        Returns:
            Conflicts, e.g. when the profile id already belongs to another customer and
            merging them would break a limit.
        """
        pairs = learned_ids.items() if isinstance(learned_ids, Mapping) else learned_ids
        learned: list[Identifier] = []
        for kind, raw in pairs:
            value = self.normalizer.normalize(kind, raw)
            if value is not None:
                learned.append((kind, value))
        graph = IdentityGraph(self.settings)
        if not learned:
            return []
        with self._turn(True) as conn:
            current = follow(conn, customer_id)
            own = identifiers_of(conn, [current])
            if own:
                load_components(conn, graph, {*own, *learned}, self._cache)
                comp = graph.component_of(own[0])
                assert comp is not None
                when = at or from_us(max(seen.last for seen in comp.identifiers.values()))
                anchor = min(comp.identifiers, key=lambda i: (graph.ranking.get(i[0], 99), i[1]))
                graph.learn(anchor, learned, when)
                write_changes(self.store, conn, graph, cache=self._cache)
        return list(graph.conflicts)

    async def enrich(
        self, resolution: Resolution, client: ProfilesClient, *, max_lookups: int = 1000
    ) -> int:
        """Ask Segment's Profiles API about customers known only by anonymous ids.

        Identifiers Segment knows are learned into the graph (within the limits) and
        the resolution's customers are refreshed. Returns how many customers gained ids.
        """
        candidates = unresolved(resolution.customers.values())
        found = await lookup_identifiers(client, candidates, max_lookups=max_lookups)
        for customer_id, identifiers in found.items():
            resolution.conflicts += self.learn(customer_id, identifiers)
        if found:
            refreshed: dict[str, Customer | None] = {}
            for message_id, customer in resolution.customers.items():
                old = customer.customer_id
                if old in found:
                    if old not in refreshed:
                        refreshed[old] = self.customer(old)
                    fresh = refreshed[old]
                    if fresh is not None:
                        resolution.customers[message_id] = fresh
                        if fresh.customer_id != old:
                            resolution.merges[old] = fresh.customer_id
        return len(found)

    def customer(self, customer_id: str) -> Customer | None:
        """A stored customer by id (followed through merges), or None."""
        graph = IdentityGraph(self.settings)
        with self.store.engine.connect() as conn:
            current = follow(conn, customer_id)
            own = identifiers_of(conn, [current])
            if not own:
                return None
            load_components(conn, graph, set(own))
        comp = graph.component_of(own[0])
        if comp is None:
            return None
        return Customer(graph.customer_id(comp), comp.by_kind(), dict(comp.traits))

    def current_id(self, customer_id: str) -> str:
        """The id a customer has now (after merges)."""
        with self.store.engine.connect() as conn:
            return follow(conn, customer_id)

    @contextmanager
    def _turn(self, write: bool) -> Iterator[sa.Connection]:
        """A transaction; a writing one takes the graph's write turn and keeps the cache.

        The cache takes this turn's writes only once the transaction commits, and is
        emptied when anything fails, so it never holds what the store does not.
        """
        if not write:
            with self.store.engine.begin() as conn:
                yield conn
            return
        with self._writing:
            try:
                with self.store.engine.begin() as conn:
                    version = lock_graph(conn)
                    self._cache.begin(version)
                    yield conn
            except BaseException:
                self._cache.clear()
                raise
            self._cache.commit(version)

    def conflicts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Stored conflicts, newest first (for `espbridge` reports)."""
        return stored_conflicts(self.store.engine, limit=limit)


def in_event_order(messages: Sequence[Message]) -> list[Message]:
    """Messages sorted by (timestamp, messageId), stable for full ties.

    Sorted by timestamp alone first, then each run of equal timestamps by messageId:
    the same order as a (timestamp, messageId) key, without a key tuple per message.
    """
    ordered = sorted(messages, key=_TIME)
    times = [m.timestamp for m in ordered]
    ties = [i for i, same in enumerate(map(eq, times, islice(times, 1, None))) if same]
    j = 0
    while j < len(ties):
        start = ties[j]
        stop = start + 2
        j += 1
        while j < len(ties) and ties[j] == stop - 1:
            stop += 1
            j += 1
        ordered[start:stop] = sorted(ordered[start:stop], key=_MESSAGE_ID)
    return ordered


class _Customers:
    """The `Customer` of each message of a batch, each built once.

    A component the batch changed is built from the graph (`changed`, called as it is
    written); a stored customer it did not load is the one built from its cache entry,
    kept with that entry across batches, or built again when the batch re-timed it.
    """

    def __init__(self, graph: IdentityGraph, base: GraphCache):
        self.graph = graph
        self.base = base
        self.by_component: dict[int, Customer] = {}
        """id(component) → its Customer, for the components the batch changed."""
        self.used: set[str] = set()
        """Stored customers the batch placed messages on (kept in the cache longest)."""

    def changed(self, comp: Component, customer_id: str) -> Customer:
        """Build a changed component's Customer (the `build` of `write_changes`)."""
        customer = Customer(customer_id, comp.by_kind(), dict(comp.traits))
        self.by_component[id(comp)] = customer
        return customer

    def stored(self, customer_id: str) -> Customer:
        """A stored customer the batch did not load, as its cache entry gives it."""
        built = self.base.built
        customer: Customer | None = built.get(customer_id)
        retimed = customer_id in self.graph.retimed
        if customer is None:
            held = self.base.customers[customer_id]
            owner = self.base.owner
            customer = Customer(
                customer_id_for(held.identifiers, self.graph.ranking),
                by_kind((ident, owner[ident][2]) for ident in held.identifiers),
                orjson.loads(held.traits),
            )
            built[customer_id] = customer
        elif retimed:
            # Only the order of identifiers can change: same id, same traits (shared).
            owner = self.base.owner
            idents = self.base.customers[customer_id].identifiers
            customer = Customer(
                customer.customer_id,
                by_kind((ident, owner[ident][2]) for ident in idents),
                customer.traits,
            )
            built[customer_id] = customer
        self.used.add(customer_id)
        return customer

    def of(
        self, ordered: Sequence[Message], spots: Sequence[Place | None], unresolved: list[str]
    ) -> dict[str, Customer]:
        """messageId → Customer; messages with no identifier go to `unresolved`."""
        out: dict[str, Customer] = {}
        memo: dict[Place, Customer] = {}
        for message, spot in zip(ordered, spots, strict=True):
            if spot is None:
                unresolved.append(message.message_id)
                continue
            customer = memo.get(spot)
            if customer is None:
                customer = memo[spot] = self._at(spot)
            out[message.message_id] = customer
        return out

    def _at(self, spot: Place) -> Customer:
        graph = self.graph
        if isinstance(spot, str):
            key = graph.loaded(spot)
            if key is None:
                return self.stored(spot)
        else:
            key = spot
        comp = graph.component(key)
        customer = self.by_component.get(id(comp))
        if customer is not None:
            return customer
        # Loaded but unchanged: exactly its one stored customer.
        [stored] = comp.stored_ids
        return self.stored(stored)
