"""Recent cancel and counted events in memory: a cache over `trigger_journal`.

A pending instance learns its cancel when the cancel is observed (a mark on its row),
so cancel events are needed only for instances created later: starts arriving out of
order (never more than the allowed lateness behind the newest event), follow-ups
created when their parent fires, and counted instances. Counted events are needed
only inside their window. So each trigger keeps in memory the events newer than its
*floor*; a lookup reaching below the floor (an event later than the contract allows)
reads the journal instead, and gets the same answer.

Times are integer microseconds (`sync.store.triggers.to_micros`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.triggers.matching import ANY_KEY

NEVER = -(2**62)
"""A floor below every event: the window holds everything ever observed."""

CancelEvent = tuple[str, str, str, int, str, str, bool]
"""(trigger, customer id, entity key or `*`, event time, message id, event, also starts)."""

CountEvent = tuple[str, str, str, int, str]
"""(trigger, customer id, group key, event time, message id)."""


@dataclass(frozen=True, slots=True)
class Span:
    """What a cancel must fall in to cancel one instance (times in microseconds)."""

    trigger: str
    customer_id: str
    entity_key: str
    start: int
    due: int
    start_message_id: str


def cancels(event: CancelEvent, span: Span) -> bool:
    """True when `event` cancels an instance of `span` (trigger and scope already match).

    Its time is in [start, due], it is not the start itself, and an event that also
    starts the trigger does not cancel an instance that started at the same time
    with a greater message id (the later start supersedes, not the other way round).
    """
    _, _, _, at, message_id, _, also = event
    if not span.start <= at <= span.due or message_id == span.start_message_id:
        return False
    return not (also and at == span.start and message_id <= span.start_message_id)


def earliest(events: Iterable[CancelEvent], span: Span, *, across: bool) -> CancelEvent | None:
    """The earliest (time, message id) of `events` that cancels `span`'s instance.

    Args:
        events: Cancel events of the span's trigger.
        span: The instance.
        across: The trigger has `key_scope = "global"`: the same entity key of any
            customer cancels too.
    """
    best: CancelEvent | None = None
    for event in events:
        same_customer = event[1] == span.customer_id
        if same_customer and event[2] in (span.entity_key, ANY_KEY):
            pass
        elif not (across and event[2] == span.entity_key):
            continue
        if cancels(event, span) and (best is None or (event[3], event[4]) < (best[3], best[4])):
            best = event
    return best


Ref = tuple[dict[Any, dict[Any, Any]], Any, Any]
"""Where an entry lives: (index, bucket key, slot)."""


@dataclass(slots=True)
class _Floors:
    """Per trigger, the time from which the window holds every observed event, and
    the entries to forget as the floor rises: one group per `add`, oldest first, with
    the group's newest time, so forgetting costs only what is forgotten."""

    at: dict[str, int] = field(default_factory=dict)
    groups: dict[str, deque[tuple[int, list[Ref]]]] = field(default_factory=dict)

    def covers(self, trigger: str, moment: int) -> bool:
        return moment >= self.at.get(trigger, NEVER)

    def remember(self, added: Mapping[str, tuple[int, list[Ref]]]) -> None:
        for trigger, group in added.items():
            self.groups.setdefault(trigger, deque()).append(group)

    def raise_to(self, floors: Mapping[str, int]) -> None:
        """Raise floors and forget groups entirely below them.

        A group is forgotten once its newest entry is below the floor; one that arrived
        late may hold older ones a little longer, which only costs memory.
        """
        for trigger, floor in floors.items():
            if floor > self.at.get(trigger, NEVER):
                self.at[trigger] = floor
            queue = self.groups.get(trigger)
            while queue and queue[0][0] < self.at[trigger]:
                for index, key, slot in queue.popleft()[1]:
                    bucket = index.get(key)
                    if bucket is not None:
                        bucket.pop(slot, None)
                        if not bucket:
                            del index[key]


def _note(added: dict[str, tuple[int, list[Ref]]], trigger: str, at: int, ref: Ref) -> None:
    found = added.get(trigger)
    if found is None:
        added[trigger] = (at, [ref])
    else:
        found[1].append(ref)
        if at > found[0]:
            added[trigger] = (at, found[1])


class CancelWindow:
    """Cancel events newer than each trigger's floor, by customer and entity key.

    Buckets are (trigger, customer, key), so a lookup reads only the instance's own
    entity and the customer's keyless (`*`) cancels, however busy the customer; for
    triggers in `across` also (trigger, key) of every customer.
    """

    def __init__(self, across: Iterable[str] = ()) -> None:
        self.across = frozenset(across)
        self.floors = _Floors()
        self._by_customer: dict[tuple[str, str, str], dict[tuple[int, str], CancelEvent]] = {}
        self._by_key: dict[tuple[str, str], dict[tuple[str, int, str], CancelEvent]] = {}

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._by_customer.values())

    def add(self, events: Iterable[CancelEvent], *, forget: bool = True) -> None:
        """Remember events (each once, however often observed).

        Args:
            events: Cancel events.
            forget: Track them for forgetting as floors rise (a throwaway window of
                one batch does not need to).
        """
        by_customer, by_key, across = self._by_customer, self._by_key, self.across
        added: dict[str, tuple[int, list[Ref]]] = {}
        for event in events:
            trigger, customer, key, at, message_id = event[:5]
            bucket_key = (trigger, customer, key)
            bucket = by_customer.get(bucket_key)
            if bucket is None:
                bucket = by_customer[bucket_key] = {}
            bucket[(at, message_id)] = event
            if forget:
                _note(added, trigger, at, (by_customer, bucket_key, (at, message_id)))
            if trigger in across and key != ANY_KEY:
                slot = (customer, at, message_id)
                by_key.setdefault((trigger, key), {})[slot] = event
                if forget:
                    _note(added, trigger, at, (by_key, (trigger, key), slot))
        self.floors.remember(added)

    def covers(self, span: Span) -> bool:
        """True when every cancel event that could cancel `span` is in memory."""
        return self.floors.covers(span.trigger, span.start)

    def earliest(self, span: Span) -> CancelEvent | None:
        """The earliest remembered cancel of the span's instance."""
        own = self._by_customer.get((span.trigger, span.customer_id, span.entity_key))
        keyless = self._by_customer.get((span.trigger, span.customer_id, ANY_KEY))
        across = span.trigger in self.across
        if not across and not keyless:
            return earliest(own.values(), span, across=False) if own else None
        events = [*(own or {}).values(), *(keyless or {}).values()]
        if across:
            events += self._by_key.get((span.trigger, span.entity_key), {}).values()
        return earliest(events, span, across=across)

    def advance(self, floors: Mapping[str, int]) -> None:
        """Raise the floors and forget events below them."""
        self.floors.raise_to(floors)


class CountWindow:
    """Counted events newer than each trigger's floor, by (customer, group)."""

    def __init__(self) -> None:
        self.floors = _Floors()
        # (trigger, customer, group) → (time, message id) → journal id holding its start.
        self._groups: dict[tuple[str, str, str], dict[tuple[int, str], str]] = {}

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def add(self, events: Iterable[CountEvent], journal_id: str) -> None:
        """Remember counted events and the journal row that holds their starts."""
        groups = self._groups
        added: dict[str, tuple[int, list[Ref]]] = {}
        for trigger, customer, group, at, message_id in events:
            key = (trigger, customer, group)
            groups.setdefault(key, {})[(at, message_id)] = journal_id
            _note(added, trigger, at, (groups, key, (at, message_id)))
        self.floors.remember(added)

    def covers(self, trigger: str, moment: int) -> bool:
        """True when every counted event of `trigger` at or after `moment` is in memory."""
        return self.floors.covers(trigger, moment)

    def events(self, trigger: str, customer: str, group: str) -> dict[tuple[int, str], str]:
        """(time, message id) → journal id of the group's remembered events."""
        return self._groups.get((trigger, customer, group), {})

    def advance(self, floors: Mapping[str, int]) -> None:
        """Raise the floors and forget events below them."""
        self.floors.raise_to(floors)
