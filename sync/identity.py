"""The persisted identity resolver the engine calls once per source batch.

It loads from the state store only the customers a batch touches, merges the batch's
identifiers in event-time order (`mapping.identity.IdentityGraph`), and writes back the
components that changed, the merge history and any refused merges, in one transaction.
Replaying a batch (after a crash before its bookmark was stored) changes nothing: every
step is idempotent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

import sqlalchemy as sa

from connectors.base import Customer
from connectors.segment_profiles import ProfilesClient, lookup_identifiers, unresolved
from mapping.identity import Conflict, IdentityGraph, IdentitySettings, Normalizer, extract
from mapping.identity.graph import Component
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

_EVENT_ORDER = attrgetter("timestamp", "message_id")


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
        ordered = sorted(messages, key=_EVENT_ORDER)
        found = [(m, extract(m, self.normalizer)) for m in ordered]
        graph = IdentityGraph(self.settings)
        cache = self._cache if persist else None
        result = Resolution()
        anchors: dict[str, int] = {}
        names: dict[int, str] = {}
        with self._turn(persist) as conn:
            load_components(conn, graph, {i for _, ids in found for i in ids}, cache)
            for message, ids in found:
                key = graph.observe(ids, message.timestamp, message.message_id, message.traits)
                if key is None:
                    result.unresolved.append(message.message_id)
                else:
                    anchors[message.message_id] = key
            result.merges = write_changes(
                self.store, conn, graph, names, persist=persist, cache=cache
            )
        result.conflicts = list(graph.conflicts)
        built: dict[int, Customer] = {}
        for message_id, key in anchors.items():
            root = graph.find(key)
            if root not in built:
                comp = graph.component(root)
                built[root] = self._customer(graph, comp, names.get(id(comp)))
            result.customers[message_id] = built[root]
        return result

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
                when = at or max(seen.last for seen in comp.identifiers.values())
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
        return None if comp is None else self._customer(graph, comp)

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

    # building ----------------------------------------------------------------------

    @staticmethod
    def _customer(graph: IdentityGraph, comp: Component, name: str | None = None) -> Customer:
        return Customer(
            customer_id=name or graph.customer_id(comp),
            identifiers=comp.by_kind(),
            traits=dict(comp.traits),
        )

    def conflicts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Stored conflicts, newest first (for `espbridge` reports)."""
        return stored_conflicts(self.store.engine, limit=limit)
