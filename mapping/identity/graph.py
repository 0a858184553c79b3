"""The identity graph: identifiers merged into customers with union-find, under limits.

Pure and in memory: `sync.identity` loads the part of the persisted graph a batch
touches, feeds the batch's messages (sorted by event time, then messageId), and writes
back the components that changed.

Rules:
- The identifiers of one message are edges between each other.
- Before two components merge, the merged component must stay within every limit
  (`[identity.limits]`, e.g. one user_id); otherwise the merge is refused and a
  `Conflict` records both sides. A new identifier that would break a limit becomes a
  customer of its own.
- A message's identifiers are merged in priority order (user_id first), so the
  message belongs to the component of its most telling identifier.
- The customer id is derived from the component's first identifier in priority order,
  then by value: the same identifiers give the same id, whatever the order or split.
- Traits keep, per key, the value of the latest event (ties by messageId).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from mapping.identity.component import (
    Component,
    Conflict,
    Seen,
    Stamp,
    epoch_us,
    seen_time,
)
from mapping.identity.identifiers import Identifier
from mapping.identity.settings import IdentitySettings

__all__ = [
    "Component",
    "Conflict",
    "IdentityGraph",
    "Seen",
    "Stamp",
    "customer_id_for",
    "epoch_us",
    "seen_time",
]


def customer_id_for(identifiers: Iterable[Identifier], ranking: Mapping[str, int]) -> str:
    """The deterministic customer id of a set of identifiers."""
    kind, value = min(identifiers, key=lambda i: (ranking.get(i[0], len(ranking)), i[1]))
    digest = hashlib.blake2b(f"{kind}\x1f{value}".encode(), digest_size=10).hexdigest()
    return f"cus_{digest}"


class IdentityGraph:
    """Union-find over customers, with per-kind limits."""

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self.ranking = settings.ranking()
        self.limits = dict(settings.limits)
        self._parent: dict[int, int] = {}
        self._components: dict[int, Component] = {}
        self._owner: dict[Identifier, int] = {}
        self._next = 0
        self.conflicts: list[Conflict] = []

    # building ----------------------------------------------------------------------

    def _new(self, component: Component) -> int:
        key = self._next
        self._next += 1
        self._parent[key] = key
        self._components[key] = component
        for ident in component.identifiers:
            self._owner[ident] = key
        return key

    def load(
        self,
        customer_id: str,
        identifiers: Mapping[Identifier, Seen],
        traits: Mapping[str, Any] | None = None,
        trait_stamps: Mapping[str, Stamp] | None = None,
    ) -> None:
        """Add a stored customer (unchanged until a message touches it)."""
        self.adopt(
            Component(
                identifiers=dict(identifiers),
                traits=dict(traits or {}),
                trait_stamps=dict(trait_stamps or {}),
                stored_ids={customer_id},
            )
        )

    def adopt(self, component: Component) -> None:
        """Add a stored customer as is: the graph owns (and changes) `component`."""
        self._new(component)

    def find(self, key: int) -> int:
        """The root of a component (with path halving)."""
        parent = self._parent
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def component_of(self, ident: Identifier) -> Component | None:
        """The component holding an identifier, if any."""
        key = self._owner.get(ident)
        return None if key is None else self._components[self.find(key)]

    # merging -----------------------------------------------------------------------

    def _fits(self, a: Component, b: Component) -> tuple[str, int] | None:
        """The (kind, limit) a merge of a and b would break, or None when it fits."""
        kinds = {k for k, _ in b.identifiers}
        for kind in sorted(kinds, key=lambda k: self.ranking.get(k, len(self.ranking))):
            limit = self.limits.get(kind)
            if limit is None:
                continue
            union = {v for k, v in a.identifiers if k == kind} | {
                v for k, v in b.identifiers if k == kind
            }
            if len(union) > limit:
                return kind, limit
        return None

    def _union(self, into: int, other: int) -> None:
        a, b = self._components[into], self._components.pop(other)
        self._parent[other] = into
        for ident, seen in b.identifiers.items():
            held = a.identifiers.get(ident)
            if held is None:
                a.identifiers[ident] = seen
            else:
                held.widen(seen.first, seen.last)
        for key, value in b.traits.items():
            stamp = b.trait_stamps[key]
            held_stamp = a.trait_stamps.get(key)
            if held_stamp is None or stamp > held_stamp:
                a.traits[key] = value
                a.trait_stamps[key] = stamp
        a.stored_ids |= b.stored_ids
        a.dirty |= b.dirty
        a.changed = a.traits_changed = True

    def _touch(self, key: int, ident: Identifier, at: datetime) -> None:
        comp = self._components[key]
        seen = comp.identifiers.get(ident)
        if seen is None:
            comp.identifiers[ident] = Seen(at, at)
            self._owner[ident] = key
        elif at < seen.first or at > seen.last:
            seen.widen(at, at)
        else:
            return
        comp.changed = True
        comp.dirty.add(ident)

    def observe(
        self,
        identifiers: Sequence[Identifier],
        at: datetime,
        message_id: str,
        traits: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Merge one message's identifiers; return the key of its component.

        Returns None when the message has no usable identifier (all junk).
        """
        moment = at
        at = seen_time(at)
        ranking, last = self.ranking, len(self.ranking)
        if len(identifiers) > 1:
            ordered = sorted(set(identifiers), key=lambda i: (ranking.get(i[0], last), i[1]))
        else:
            ordered = list(identifiers)
        anchor: int | None = None
        for ident in ordered:
            owner = self._owner.get(ident)
            current = None if owner is None else self.find(owner)
            if anchor is None:
                anchor = current if current is not None else self._new(Component(changed=True))
                self._touch(anchor, ident, at)
                continue
            if current == anchor:
                self._touch(anchor, ident, at)
                continue
            self._merge(anchor, ident, current, at, message_id)
            anchor = self.find(anchor)
        if anchor is not None and traits and self.settings.track_traits:
            self._components[anchor].set_traits(traits, (epoch_us(moment), message_id))
        return anchor

    def _merge(
        self, anchor: int, ident: Identifier, current: int | None, at: datetime, message_id: str
    ) -> None:
        base = self._components[anchor]
        other = (
            self._components[current]
            if current is not None
            else Component(identifiers={ident: Seen(at, at)})
        )
        broken = self._fits(base, other)
        if broken is None:
            if current is None:
                self._touch(anchor, ident, at)
            else:
                self._union(anchor, current)
                self._touch(anchor, ident, at)
            return
        kind, limit = broken
        if current is None:
            current = self._new(Component(changed=True))
            self._touch(current, ident, at)
        else:
            self._touch(current, ident, at)
        other = self._components[current]
        self.conflicts.append(
            Conflict(
                kind=ident[0],
                value=ident[1],
                limit_kind=kind,
                limit=limit,
                customer_id=self.customer_id(base),
                other_customer_id=self.customer_id(other),
                customer=base.by_kind(),
                other=other.by_kind(),
                message_id=message_id,
                at=at,
            )
        )

    def learn(
        self, anchor: Identifier, identifiers: Sequence[Identifier], at: datetime
    ) -> int | None:
        """Add identifiers an ESP or Segment told us to anchor's customer.

        The anchor goes first, so the learned ids join its customer (within limits).
        """
        key = self.observe([anchor], at, "")
        assert key is not None
        at = seen_time(at)
        for ident in sorted(set(identifiers) - {anchor}):
            owner = self._owner.get(ident)
            current = None if owner is None else self.find(owner)
            root = self.find(key)
            if current == root:
                self._touch(root, ident, at)
            else:
                self._merge(root, ident, current, at, f"learned:{anchor[0]}:{anchor[1]}")
        return self.find(key)

    # reading -----------------------------------------------------------------------

    def customer_id(self, comp: Component) -> str:
        """The component's deterministic customer id."""
        return customer_id_for(comp.identifiers, self.ranking)

    def component(self, key: int) -> Component:
        """The component (root) of a key."""
        return self._components[self.find(key)]

    def components(self) -> Iterable[Component]:
        """Every live component."""
        return self._components.values()

    def changed(self) -> list[Component]:
        """Components a message changed since they were loaded."""
        return [c for c in self._components.values() if c.changed]
