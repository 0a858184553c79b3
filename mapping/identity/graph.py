"""The identity graph: identifiers merged into customers with union-find, under limits.

Pure and in memory: `sync.identity` gives it what the store knows about the batch's
identifiers (`attach`), feeds the batch's messages (sorted by event time, then
messageId), and writes back what changed. A stored customer becomes a `Component` only
when a message would add to it, merge it or set its traits; a message whose identifiers
all belong to one customer already (the common case: a returning visitor) only widens
their first/last seen, in the known map itself (`observe_known`).

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
- An alias from one user id to another renames the customer (`mapping.identity.aliases`):
  the old user id becomes a `former_user_id`, which later messages resolve through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any

from mapping.identity.aliases import ALIASED, USER_ID, twin
from mapping.identity.component import (
    Component,
    Conflict,
    Known,
    Seen,
    Stamp,
    epoch_us,
    hour_us,
    seen_time,
)
from mapping.identity.identifiers import Identifier
from mapping.identity.settings import IdentitySettings

__all__ = [
    "Component",
    "Conflict",
    "IdentityGraph",
    "Known",
    "Seen",
    "Stamp",
    "customer_id_for",
    "epoch_us",
    "hour_us",
    "seen_time",
]

Loader = Callable[[str], Component]
"""Stored customer id → that customer as a fresh `Component` (`stored_ids={id}`)."""

Place = int | str
"""Where a message went: a component key, or the id of a stored customer the batch has
not loaded (so far)."""


def customer_id_for(identifiers: Iterable[Identifier], ranking: Mapping[str, int]) -> str:
    """The deterministic customer id of a set of identifiers."""
    kind, value = min(identifiers, key=lambda i: (ranking.get(i[0], len(ranking)), i[1]))
    digest = hashlib.blake2b(f"{kind}\x1f{value}".encode(), digest_size=10).hexdigest()
    return f"cus_{digest}"


def _first(item: tuple[tuple[int, str | int], Component]) -> tuple[int, str | int]:
    return item[0]


def _no_loader(customer_id: str) -> Component:
    raise KeyError(customer_id)


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
        self._known: MutableMapping[Identifier, Known] = {}
        self._load: Loader = _no_loader
        self._stored: dict[str, int] = {}
        """Stored customer id → key of its component, once loaded."""
        self._rank: dict[int, tuple[int, str | int]] = {}
        """Key → where `changed` lists its component: stored customers by id, then new
        ones as created (the order of loading every touched customer up front)."""
        self.retimed: set[str] = set()
        """Stored customers (not loaded) whose identifiers `observe_known` re-timed."""
        self.touched: set[Identifier] = set()
        """Their identifiers seen at a new hour (updated in the known map)."""
        self.retired: set[Identifier] = set()
        """User ids an alias turned into former ones: their stored rows must go (the
        customer now holds them as `former_user_id`)."""

    # building ----------------------------------------------------------------------

    def _new(self, component: Component) -> int:
        key = self._next
        self._next += 1
        self._parent[key] = key
        self._components[key] = component
        owner = self._owner
        for ident in component.identifiers:
            owner[ident] = key
        for stored in component.stored_ids:
            self._stored[stored] = key
        self._rank[key] = (0, min(component.stored_ids)) if component.stored_ids else (1, key)
        return key

    def attach(self, known: MutableMapping[Identifier, Known], load: Loader) -> None:
        """Give the graph what the store knows, without loading customers yet.

        Args:
            known: identifier → (customer id, first, last seen) for at least every
                stored identifier the coming messages carry. `observe_known` widens
                times in it (see `touched`), so it must be the batch's own copy or be
                dropped if the batch fails.
            load: Builds a stored customer as a `Component` from `known`'s times,
                called the first time a message would change it otherwise.
        """
        self._known = known
        self._load = load

    def _materialize(self, customer_id: str) -> int:
        """Load a stored customer into the graph; return its key."""
        comp = self._load(customer_id)
        if customer_id in self.retimed:
            # Re-timed earlier in the batch: those identifiers must still be written.
            self.retimed.discard(customer_id)
            touched = self.touched
            for ident in comp.identifiers:
                if ident in touched:
                    touched.discard(ident)
                    comp.dirty.add(ident)
            comp.changed = True
        return self._new(comp)

    def load_stored(self, customer_id: str) -> int:
        """Load a stored customer (if not already); return its root."""
        key = self._stored.get(customer_id)
        return self.find(key if key is not None else self._materialize(customer_id))

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

    def _key_of(self, ident: Identifier) -> int | None:
        """The root holding an identifier, loading its stored customer if need be."""
        key = self._owner.get(ident)
        if key is None:
            held = self._known.get(ident)
            if held is None:
                return None
            key = self._stored.get(held[0])
            if key is None:
                key = self._materialize(held[0])
        return self.find(key)

    def component_of(self, ident: Identifier) -> Component | None:
        """The component holding an identifier, if any."""
        key = self._key_of(ident)
        return None if key is None else self._components[key]

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
        if b.named:
            a.named = (a.named or set()) | b.named
        a.dirty |= b.dirty
        a.changed = a.traits_changed = True

    def _touch(self, key: int, ident: Identifier, at: int) -> None:
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

    def observe_known(self, ranked: Sequence[Identifier], hour: int) -> Place | None:
        """`observe` for a message without traits, when it can only re-time identifiers.

        That is when its (non-empty, `ranked`) identifiers all belong to one customer
        already; returns None otherwise (it must be observed). A customer the batch
        has not loaded stays unloaded: new first/last seen times go into the known map
        (and `touched`), and its id is returned rather than a component key.
        """
        first = ranked[0]
        key = self._owner.get(first)
        if key is not None:
            root = self.find(key)
            held = self._components[root].identifiers
            for ident in ranked:
                if ident not in held:
                    return None
            for ident in ranked:
                seen = held[ident]
                if not seen.first <= hour <= seen.last:
                    self._touch(root, ident, hour)
            return root
        known = self._known
        info = known.get(first)
        if info is None:
            return None
        customer_id = info[0]
        stale = not info[1] <= hour <= info[2]
        # The rest cannot be loaded while the first is not: a customer loads whole.
        for ident in ranked:
            if ident is not first:
                info = known.get(ident)
                if info is None or info[0] != customer_id:
                    return None
                if not info[1] <= hour <= info[2]:
                    stale = True
        if stale:
            for ident in ranked:
                info = known[ident]
                if not info[1] <= hour <= info[2]:
                    known[ident] = (customer_id, min(info[1], hour), max(info[2], hour))
                    self.touched.add(ident)
            self.retimed.add(customer_id)
        return customer_id

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
        ranking, last = self.ranking, len(self.ranking)
        ordered = sorted(set(identifiers), key=lambda i: (ranking.get(i[0], last), i[1]))
        return self.observe_ranked(ordered, at, hour_us(at), message_id, traits)

    def observe_ranked(
        self,
        ordered: Sequence[Identifier],
        at: datetime,
        hour: int,
        message_id: str,
        traits: Mapping[str, Any] | None = None,
    ) -> int | None:
        """`observe` for identifiers already unique and in merge order, at `hour_us(at)`."""
        anchor: int | None = None
        for ident in ordered:
            current = self._key_of(ident)
            if current is None and ident[0] in ALIASED:
                former = self._key_of(twin(ident))
                if former is not None:
                    if ident[0] == USER_ID:
                        # A former id: the message is about the customer who had it.
                        ident, current = twin(ident), former
                    elif anchor is not None:
                        self._rename(anchor, ident, former, at, hour, message_id)
                        anchor = self.find(anchor)
                        continue
            if anchor is None:
                anchor = current if current is not None else self._new(Component(changed=True))
                self._touch(anchor, ident, hour)
                continue
            if current == anchor:
                self._touch(anchor, ident, hour)
                continue
            self._merge(anchor, ident, current, at, hour, message_id)
            anchor = self.find(anchor)
        if anchor is not None and traits and self.settings.track_traits:
            self._components[anchor].set_traits(traits, (epoch_us(at), message_id))
        return anchor

    def _merge(
        self,
        anchor: int,
        ident: Identifier,
        current: int | None,
        at: datetime,
        hour: int,
        message_id: str,
    ) -> None:
        base = self._components[anchor]
        other = (
            self._components[current]
            if current is not None
            else Component(identifiers={ident: Seen(hour, hour)})
        )
        broken = self._fits(base, other)
        if broken is None:
            if current is None:
                self._touch(anchor, ident, hour)
            else:
                self._union(anchor, current)
                self._touch(anchor, ident, hour)
            return
        if current is None:
            current = self._new(Component(changed=True))
        self._touch(current, ident, hour)
        self._refuse(anchor, current, ident, broken, at, message_id)

    def _refuse(
        self,
        anchor: int,
        current: int,
        ident: Identifier,
        broken: tuple[str, int],
        at: datetime,
        message_id: str,
    ) -> None:
        """Record the conflict of a refused merge of `ident`'s side into the anchor's."""
        kind, limit = broken
        base, other = self._components[anchor], self._components[current]
        customer_id, other_id = self.customer_id(base), self.customer_id(other)
        _named(base, customer_id)
        _named(other, other_id)
        self.conflicts.append(
            Conflict(
                kind=ident[0],
                value=ident[1],
                limit_kind=kind,
                limit=limit,
                customer_id=customer_id,
                other_customer_id=other_id,
                customer=base.by_kind(),
                other=other.by_kind(),
                message_id=message_id,
                at=seen_time(at),
            )
        )

    def _rename(
        self,
        anchor: int,
        former: Identifier,
        holder: int,
        at: datetime,
        hour: int,
        message_id: str,
    ) -> None:
        """An alias's previous user id, held as a user id by `holder`: rename and merge.

        The holder's user id becomes a former one and the holder joins the anchor (the
        alias's userId), when the merged customer fits the limits with it renamed;
        otherwise nothing changes and a conflict is recorded.
        """
        current = twin(former)
        held = self._components[holder].identifiers
        if holder == anchor:
            # Two current user ids already (a limit above 1): keep the alias's. With
            # one, the alias's userId is itself a former id of this customer (an alias
            # back to an old id): the current id stays.
            if sum(1 for kind, _ in held if kind == USER_ID) > 1:
                self._retire(holder, current, former)
                self._touch(anchor, former, hour)
            return
        renamed = {former if ident == current else ident: seen for ident, seen in held.items()}
        broken = self._fits(self._components[anchor], Component(identifiers=renamed))
        if broken is not None:
            self._refuse(anchor, holder, former, broken, at, message_id)
            return
        self._retire(holder, current, former)
        self._union(anchor, holder)
        self._touch(anchor, former, hour)

    def _retire(self, key: int, current: Identifier, former: Identifier) -> None:
        """Turn a component's user id into a former one (its times kept)."""
        comp = self._components[key]
        seen = comp.identifiers.pop(current)
        comp.identifiers[former] = seen
        comp.dirty.discard(current)
        comp.dirty.add(former)
        comp.changed = True
        self._owner.pop(current, None)
        self._owner[former] = key
        # Gone from what is known too, so the rest of the batch reads it as former.
        self._known.pop(current, None)
        self.retired.add(current)

    def learn(
        self, anchor: Identifier, identifiers: Sequence[Identifier], at: datetime
    ) -> int | None:
        """Add identifiers an ESP or Segment told us to anchor's customer.

        The anchor goes first, so the learned ids join its customer (within limits).
        """
        key = self.observe([anchor], at, "")
        assert key is not None
        hour = hour_us(at)
        for ident in sorted(set(identifiers) - {anchor}):
            current = self._key_of(ident)
            if current is None and ident[0] == USER_ID:
                former = self._key_of(twin(ident))
                if former is not None:  # a former id, as in `observe_ranked`
                    ident, current = twin(ident), former
            root = self.find(key)
            if current == root:
                self._touch(root, ident, hour)
            else:
                message_id = f"learned:{anchor[0]}:{anchor[1]}"
                self._merge(root, ident, current, at, hour, message_id)
        return self.find(key)

    # reading -----------------------------------------------------------------------

    def customer_id(self, comp: Component) -> str:
        """The component's deterministic customer id."""
        return customer_id_for(comp.identifiers, self.ranking)

    def component(self, key: int) -> Component:
        """The component (root) of a key."""
        return self._components[self.find(key)]

    @property
    def known(self) -> Mapping[Identifier, Known]:
        """What the graph was given as known (`attach`), with its re-timings."""
        return self._known

    def loaded(self, customer_id: str) -> int | None:
        """The root of a stored customer's component, if the batch loaded it."""
        key = self._stored.get(customer_id)
        return None if key is None else self.find(key)

    def components(self) -> Iterable[Component]:
        """Every live component (stored customers never loaded are not among them)."""
        return self._components.values()

    def changed(self) -> list[Component]:
        """Components a message changed since they were loaded.

        Stored customers first, by id, then new ones in order of creation (a merged
        component is listed where the one it was merged into is).
        """
        rank = self._rank
        found = [(rank[key], comp) for key, comp in self._components.items() if comp.changed]
        found.sort(key=_first)
        return [comp for _, comp in found]


def _named(component: Component, customer_id: str) -> None:
    """Remember an id a conflict recorded for `component` (see `Component.named`)."""
    if component.named is None:
        component.named = set()
    component.named.add(customer_id)
