"""Count triggers: which counted events have enough company inside their window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from sync.store.triggers import from_micros
from sync.triggers import journal
from sync.triggers.journal import Counted
from sync.triggers.matching import key_values
from sync.triggers.observe import new_instance
from sync.triggers.settings import TriggerSettings
from sync.triggers.window import CountEvent, CountWindow

_US = timedelta(microseconds=1)

Group = tuple[str, str, str]
"""(trigger, customer id, group key)."""


def qualified(
    conn: sa.Connection,
    triggers: Mapping[str, TriggerSettings],
    added: Sequence[Counted],
    window: CountWindow,
    journal_id: str | None,
) -> list[dict[str, Any]]:
    """Instances of count triggers: each counted event whose window holds enough.

    A late event can make later remembered events qualify, so every event within one
    window of an added one is evaluated again (instance inserts are idempotent).
    Remembered events come from `window`, or from the journal when a window reaches
    below what memory holds.

    Args:
        conn: The observe transaction (the batch's journal row is already written).
        triggers: The configured triggers by name.
        added: The batch's counted events.
        window: Counted events of earlier batches.
        journal_id: The batch's journal row.
    """
    new: dict[Group, dict[tuple[int, str], Counted]] = {}
    for item in added:
        trigger, customer, group, at, message_id = item.event
        new.setdefault((trigger, customer, group), {})[(at, message_id)] = item
    ranges = {key: _range(triggers[key[0]], fresh) for key, fresh in new.items()}
    older = _from_journal(conn, window, ranges)
    out: list[dict[str, Any]] = []
    for key, fresh in new.items():
        rule = triggers[key[0]].count
        assert rule is not None
        lo, hi = ranges[key]
        seen = older[key] if key in older else window.events(*key)
        known = {slot: jid for slot, jid in seen.items() if lo <= slot[0] <= hi}
        events = sorted({**known, **dict.fromkeys(fresh, journal_id or "")})
        for at, message_id in _hits(events, rule.within // _US, rule.min, min(fresh)[0]):
            event: CountEvent = (*key, at, message_id)
            mine = fresh.get((at, message_id))
            start = mine.start if mine else journal.start_in(conn, known[(at, message_id)], event)
            if start is not None:
                out.append(_counted(triggers[key[0]], event, start))
    return out


def _range(trigger: TriggerSettings, fresh: Mapping[tuple[int, str], Counted]) -> tuple[int, int]:
    """Times of the events that can share a window with the group's new ones."""
    assert trigger.count is not None
    within = trigger.count.within // _US
    return min(fresh)[0] - within, max(fresh)[0] + within


def _from_journal(
    conn: sa.Connection, window: CountWindow, ranges: Mapping[Group, tuple[int, int]]
) -> dict[Group, dict[tuple[int, str], str]]:
    """Groups whose range reaches below memory: their events, read from the journal once."""
    needed = {key: span for key, span in ranges.items() if not window.covers(key[0], span[0])}
    if not needed:
        return {}
    lo = min(span[0] for span in needed.values())
    hi = max(span[1] for span in needed.values())
    out: dict[Group, dict[tuple[int, str], str]] = {key: {} for key in needed}
    for row in journal.rows_between(conn, journal.COUNT, lo, hi):
        for event in row.counts():
            found = out.get(event[:3])
            if found is not None:
                found[(event[3], event[4])] = row.journal_id
    return out


def _hits(
    events: Sequence[tuple[int, str]], within: int, least: int, since: int
) -> list[tuple[int, str]]:
    """Events (sorted) whose window [time - within, time] holds at least `least` events.

    Events at the same time all count; only windows ending at or after the earliest
    new event (`since`) can have changed.
    """
    hits = []
    first = 0
    for last, (at, _message_id) in enumerate(events):
        while events[first][0] < at - within:
            first += 1
        ahead = last + 1
        while ahead < len(events) and events[ahead][0] == at:
            ahead += 1
        if ahead - first >= least and at >= since:
            hits.append(events[last])
    return hits


def _counted(trigger: TriggerSettings, event: CountEvent, blob: bytes) -> dict[str, Any]:
    _, customer_id, _group, at, message_id = event
    start = orjson.loads(blob)
    message = start.get("message") or {}
    # The entity is what `key` names, as for any start: the `same` group is only what
    # was counted (it is the entity only when both are the same path). Without `key`
    # the entity is "" so that any exit event of the customer cancels.
    keys = key_values(message, trigger.key) if trigger.key else []
    when = from_micros(at)
    return new_instance(
        trigger,
        customer_id,
        start,
        blob=blob,
        start_message_id=message_id,
        start_time=when,
        base_time=when,
        entity_key=keys[0] if keys else "",
    )
