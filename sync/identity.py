"""The persisted identity resolver the engine calls once per source batch.

It loads from the state store only the customers a batch touches, merges the batch's
identifiers in event-time order (`mapping.identity.IdentityGraph`), and writes back the
components that changed, the merge history and any refused merges, in one transaction.
Replaying a batch (after a crash before its bookmark was stored) changes nothing: every
step is idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors.base import Customer
from connectors.segment_profiles import ProfilesClient, lookup_identifiers, unresolved
from mapping.identity import Conflict, IdentityGraph, IdentitySettings, Normalizer, Seen, extract
from mapping.identity.graph import Component
from mapping.identity.identifiers import Identifier
from mapping.types import Message
from sync.store.identity import (
    identity_conflicts,
    identity_customers,
    identity_identifiers,
    identity_merges,
)
from sync.store.state import StateStore

_CHUNK = 500


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


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


class IdentityResolver:
    """Resolves messages to customers against the graph in the state store."""

    def __init__(self, store: StateStore, settings: IdentitySettings | None = None) -> None:
        self.store = store
        self.settings = settings or IdentitySettings()
        self.normalizer = Normalizer.of(self.settings)

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
        ordered = sorted(messages, key=lambda m: (m.timestamp, m.message_id))
        found = [(m, extract(m, self.normalizer)) for m in ordered]
        graph = IdentityGraph(self.settings)
        with self.store.engine.begin() as conn:
            self._load(conn, graph, {i for _, ids in found for i in ids})
            result = Resolution()
            anchors: dict[str, int] = {}
            for message, ids in found:
                key = graph.observe(ids, message.timestamp, message.message_id, message.traits)
                if key is None:
                    result.unresolved.append(message.message_id)
                else:
                    anchors[message.message_id] = key
            names: dict[int, str] = {}
            result.merges = self._write(conn, graph, names, persist=persist)
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
        with self.store.engine.begin() as conn:
            current = self._follow(conn, customer_id)
            own = self._identifiers_of(conn, [current])
            if not own or not learned:
                return []
            self._load(conn, graph, {*own, *learned})
            comp = graph.component_of(own[0])
            assert comp is not None
            when = at or max(seen.last for seen in comp.identifiers.values())
            anchor = min(comp.identifiers, key=lambda i: (graph.ranking.get(i[0], 99), i[1]))
            graph.learn(anchor, learned, when)
            self._write(conn, graph)
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
            current = self._follow(conn, customer_id)
            own = self._identifiers_of(conn, [current])
            if not own:
                return None
            self._load(conn, graph, set(own))
        comp = graph.component_of(own[0])
        return None if comp is None else self._customer(graph, comp)

    def current_id(self, customer_id: str) -> str:
        """The id a customer has now (after merges)."""
        with self.store.engine.connect() as conn:
            return self._follow(conn, customer_id)

    # loading -----------------------------------------------------------------------

    def _follow(self, conn: sa.Connection, customer_id: str) -> str:
        t = identity_merges
        seen = {customer_id}
        while True:
            into = conn.execute(
                sa.select(t.c.into_customer_id).where(t.c.from_customer_id == customer_id)
            ).scalar()
            if into is None or into in seen:
                return customer_id
            seen.add(into)
            customer_id = into

    def _identifiers_of(self, conn: sa.Connection, customer_ids: Sequence[str]) -> list[Identifier]:
        t = identity_identifiers
        found: list[Identifier] = []
        for chunk in _chunks(list(customer_ids)):
            query = sa.select(t.c.kind, t.c.value).where(t.c.customer_id.in_(chunk))
            found += [(k, v) for k, v in conn.execute(query)]
        return found

    def _load(self, conn: sa.Connection, graph: IdentityGraph, idents: set[Identifier]) -> None:
        t = identity_identifiers
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, value in idents:
            by_kind[kind].append(value)
        customer_ids: set[str] = set()
        for kind, values in by_kind.items():
            for chunk in _chunks(values):
                query = sa.select(t.c.customer_id).where(t.c.kind == kind, t.c.value.in_(chunk))
                customer_ids.update(conn.execute(query).scalars())
        if not customer_ids:
            return
        members: dict[str, dict[Identifier, Seen]] = defaultdict(dict)
        traits: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        ids = sorted(customer_ids)
        for chunk in _chunks(ids):
            rows = conn.execute(
                sa.select(
                    t.c.customer_id, t.c.kind, t.c.value, t.c.first_seen_us, t.c.last_seen_us
                ).where(t.c.customer_id.in_(chunk))
            )
            for cid, kind, value, first, last in rows:
                members[cid][(kind, value)] = Seen(_from_us(first), _from_us(last))
            c = identity_customers
            for cid, values, stamps in conn.execute(
                sa.select(c.c.customer_id, c.c.traits, c.c.trait_stamps).where(
                    c.c.customer_id.in_(chunk)
                )
            ):
                traits[cid] = (
                    orjson.loads(values),
                    {k: tuple(v) for k, v in orjson.loads(stamps).items()},
                )
        for cid in ids:
            held, stamps = traits.get(cid, ({}, {}))
            graph.load(cid, members[cid], held, stamps)

    # writing -----------------------------------------------------------------------

    def _write(
        self,
        conn: sa.Connection,
        graph: IdentityGraph,
        names: dict[int, str] | None = None,
        *,
        persist: bool = True,
    ) -> dict[str, str]:
        now = datetime.now(UTC)
        ident_rows: list[dict[str, Any]] = []
        customer_rows: list[dict[str, Any]] = []
        merges: dict[str, str] = {}
        for comp in graph.changed():
            cid = graph.customer_id(comp)
            if names is not None:
                names[id(comp)] = cid
            moved = comp.stored_ids != {cid}
            idents = comp.identifiers if moved else {i: comp.identifiers[i] for i in comp.dirty}
            for (kind, value), seen in idents.items():
                ident_rows.append(
                    {
                        "kind": kind,
                        "value": value,
                        "customer_id": cid,
                        "first_seen_us": _to_us(seen.first),
                        "last_seen_us": _to_us(seen.last),
                    }
                )
            if moved or comp.traits_changed:
                customer_rows.append(
                    {
                        "customer_id": cid,
                        "traits": _dumps(comp.traits),
                        "trait_stamps": _dumps(comp.trait_stamps),
                        "updated_at": now,
                    }
                )
            for old in sorted(comp.stored_ids - {cid}):
                merges[old] = cid
        if not persist:
            return merges
        self.store.upsert(conn, identity_identifiers, ident_rows)
        self.store.upsert(conn, identity_customers, customer_rows)
        if merges:
            self._record_merges(conn, merges, now)
        self._record_conflicts(conn, graph.conflicts, now)
        return merges

    def _record_merges(self, conn: sa.Connection, merges: Mapping[str, str], now: datetime) -> None:
        m, c = identity_merges, identity_customers
        old = sorted(merges)
        for chunk in _chunks(old):
            conn.execute(sa.delete(c).where(c.c.customer_id.in_(chunk)))
        for source, target in merges.items():
            # Keep the history flat: whatever pointed at `source` now points at `target`.
            conn.execute(
                sa.update(m).where(m.c.into_customer_id == source).values(into_customer_id=target)
            )
        rows = [
            {"from_customer_id": s, "into_customer_id": t, "merged_at": now}
            for s, t in merges.items()
        ]
        self.store.upsert(conn, m, rows)

    def _record_conflicts(
        self, conn: sa.Connection, conflicts: Sequence[Conflict], now: datetime
    ) -> None:
        if not conflicts:
            return
        rows = [
            {
                "kind": c.kind,
                "value": c.value,
                "limit_kind": c.limit_kind,
                "limit": c.limit,
                "customer_id": c.customer_id,
                "other_customer_id": c.other_customer_id or "",
                "sides": {"customer": dict(c.customer), "other": dict(c.other)},
                "message_id": c.message_id[:200],
                "event_time": c.at,
                "created_at": now,
            }
            for c in conflicts
        ]
        insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(identity_conflicts).on_conflict_do_nothing(
            index_elements=["kind", "value", "customer_id", "other_customer_id"]
        )
        conn.execute(stmt, rows)

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
        t = identity_conflicts
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]
