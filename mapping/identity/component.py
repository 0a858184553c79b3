"""The parts of an identity graph: when identifiers were seen, customers, conflicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mapping.blank import is_blank
from mapping.identity.identifiers import Identifier

Stamp = tuple[int, str]
"""(event time in epoch microseconds, messageId): orders trait updates deterministically."""

Known = tuple[str, int, int]
"""What is stored about one identifier: (customer id, first seen, last seen).

Times are epoch microseconds at the hour, as in the store. Plain tuples of strings and
integers: a large map of them costs the garbage collector nothing.
"""

HOUR_US = 3_600_000_000


@dataclass(slots=True)
class Seen:
    """First and last event time an identifier was seen, epoch microseconds at the hour.

    Integers rather than datetimes: they are compared for every identifier of every
    message, and are what the store holds (`first_seen_us`, `last_seen_us`).
    """

    first: int
    last: int

    def widen(self, first: int, last: int) -> None:
        """Extend to cover [first, last]."""
        if first < self.first:
            self.first = first
        if last > self.last:
            self.last = last


def by_kind(seen: Iterable[tuple[Identifier, int]]) -> dict[str, list[str]]:
    """(identifier, last seen) pairs as identifiers per kind, most recent first (then value)."""
    out: dict[str, list[str]] = {}
    for _, (kind, value) in sorted((-last, ident) for ident, last in seen):
        held = out.get(kind)
        if held is None:
            out[kind] = [value]
        else:
            held.append(value)
    return out


@dataclass(slots=True)
class Component:
    """One customer while a batch is resolved."""

    identifiers: dict[Identifier, Seen] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    trait_stamps: dict[str, Stamp] = field(default_factory=dict)
    stored_ids: set[str] = field(default_factory=set)
    """Customer ids this component had in the store (more than one after a merge)."""
    named: set[str] | None = None
    """Ids a conflict named it by during the batch, before it may have been renamed:
    each gets a merge row to the final id, as a rename between two runs would."""
    changed: bool = False
    dirty: set[Identifier] = field(default_factory=set)
    """Identifiers added or seen at a new time since loading."""
    traits_changed: bool = False

    def count(self, kind: str) -> int:
        """How many identifiers of a kind it has."""
        return sum(1 for k, _ in self.identifiers if k == kind)

    def by_kind(self) -> dict[str, list[str]]:
        """Identifiers per kind, most recently seen first (then by value)."""
        return by_kind((ident, seen.last) for ident, seen in self.identifiers.items())

    def set_traits(self, traits: Mapping[str, Any], stamp: Stamp) -> None:
        """Keep each trait whose stamp is newer than the one held."""
        for key, value in traits.items():
            if is_blank(value):
                continue
            held = self.trait_stamps.get(key)
            if held is None or stamp > held:
                self.changed = self.traits_changed = True
                self.traits[key] = value
                self.trait_stamps[key] = stamp


@dataclass(frozen=True, slots=True)
class Conflict:
    """A merge a limit refused: the linking identifier, the limit, and both sides.

    Attributes:
        kind: Kind of the identifier that would have linked the two sides.
        value: Its value.
        limit_kind: The kind whose limit the merge would break.
        limit: That limit.
        customer_id: The side the message belongs to.
        other_customer_id: The side the identifier stays with.
        customer: Identifiers of the message's side.
        other: Identifiers of the other side.
        message_id: The message (or `learned:…`) that asked for the merge.
        at: Its event time.
    """

    kind: str
    value: str
    limit_kind: str
    limit: int
    customer_id: str
    other_customer_id: str | None
    customer: Mapping[str, Sequence[str]]
    other: Mapping[str, Sequence[str]]
    message_id: str
    at: datetime

    @property
    def reason(self) -> str:
        """Human-readable reason, for the run report."""
        return (
            f"{self.kind}={self.value!r} links customers {self.customer_id} and "
            f"{self.other_customer_id}; merged they would have more than {self.limit} "
            f"{self.limit_kind} identifier(s)"
        )


def seen_time(at: datetime) -> datetime:
    """Event time at the hour: first/last seen change (and are rewritten) at most hourly."""
    return at.replace(minute=0, second=0, microsecond=0)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(at: datetime) -> int:
    """Microseconds since the epoch (exact, unlike `timestamp()`)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def hour_us(at: datetime) -> int:
    """`epoch_us(seen_time(at))`, in integer arithmetic for UTC times (the usual case)."""
    if at.tzinfo is UTC:
        delta = at - _EPOCH
        return (delta.days * 24 + delta.seconds // 3600) * HOUR_US
    # Elsewhere the hour is taken in the time's own zone, as `seen_time` does.
    return epoch_us(seen_time(at))


def from_us(value: int) -> datetime:
    """The UTC datetime of epoch microseconds."""
    return _EPOCH + timedelta(microseconds=value)
