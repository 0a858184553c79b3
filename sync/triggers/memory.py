"""What the trigger engine remembers between batches: recent cancel and counted events.

The windows (`sync.triggers.window`) are a cache over `trigger_journal`: loaded on first
use (a restart), kept in step with what other engines journal, moved on with the
newest event time, and forgotten when a batch's transaction fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from sync.store.triggers import from_micros, to_micros
from sync.triggers import journal, store
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings
from sync.triggers.window import CancelEvent, CancelWindow, CountEvent, CountWindow, Span

_US = timedelta(microseconds=1)
_MEMORY = timedelta(hours=24)
"""Cancel events at least this far behind the newest stay in memory (a few hundred
bytes each); an older start (later than most sources ever are) reads the journal."""
_COUNT_MEMORY = timedelta(hours=6)
"""The same for counted events (plus the count window): they are far more numerous."""


class Memory:
    """The cancel and count windows of one trigger engine.

    Args:
        triggers: The configured triggers by name.
        settings: `[trigger_engine]`.
        across: Triggers with `key_scope = "global"`.
        chains: Per follow-up trigger, how far before its parent's due time its start
            can lie (the parents' waits and a day of quiet hours each).
    """

    def __init__(
        self,
        triggers: Mapping[str, TriggerSettings],
        settings: TriggerEngineSettings,
        across: frozenset[str],
        chains: Mapping[str, timedelta],
    ) -> None:
        self.triggers = triggers
        self.settings = settings
        self.across = across
        self.chains = chains
        self.cancels = CancelWindow(across)
        self.counted = CountWindow()
        self.staged: list[CancelEvent] = []  # a preview's cancels (never remembered)
        self._loaded = False
        self._seq = 0  # the newest journal row the windows reflect
        self._own: set[str] = set()  # journal rows this engine wrote, not yet seen by seq

    def forget(self) -> None:
        """Drop both windows; the next batch loads them again from the journal."""
        self.cancels = CancelWindow(self.across)
        self.counted = CountWindow()
        self._own.clear()
        self._loaded = False

    def sync(self, conn: sa.Connection) -> None:
        """Load the windows on first use; later, add what other engines journaled."""
        if not self._loaded:
            self._load(conn)
            return
        newer = journal.newer_ids(conn, self._seq)
        if not newer:
            return
        self._seq = newer[-1][0]
        foreign = [jid for _seq, jid in newer if jid not in self._own]
        self._own.difference_update(jid for _seq, jid in newer)
        for row in journal.rows_by_id(conn, foreign):
            self._add_row(row)
        latest = store.max_event_time(conn)
        if latest is not None:
            self.advance(to_micros(latest))

    def remember(
        self,
        counted: Iterable[CountEvent],
        ids: tuple[str | None, str | None],
        frontier: int | None,
    ) -> None:
        """After the commit: the batch's counted events join their window (its cancels
        joined before), and both windows move on to the newest event time."""
        self.counted.add(counted, ids[1] or "")
        self._own.update(i for i in ids if i)
        if frontier is not None:
            self.advance(frontier)

    def advance(self, frontier: int) -> None:
        """Move both windows to the newest event time `frontier` (microseconds)."""
        cancel_floors, count_floors = self._floors(frontier)
        self.cancels.advance(cancel_floors)
        self.counted.advance(count_floors)

    def mark_new(
        self, conn: sa.Connection, instances: list[dict[str, Any]], batch: Sequence[CancelEvent]
    ) -> None:
        """Give new pending instances the earliest cancel already observed (or in `batch`)."""
        spans = [(row, span) for row in instances if (span := self._span(row)) is not None]
        if not spans:
            return
        recent = CancelWindow(self.across)
        if batch or self.staged:
            recent.add([*batch, *self.staged], forget=False)
        older = [span for _row, span in spans if not self.cancels.covers(span)]
        journaled = self._journaled(conn, older)
        for row, span in spans:
            found = [self.cancels.earliest(span), recent.earliest(span)]
            if older:
                found.append(journaled.earliest(span))
            best = min((f for f in found if f), key=lambda e: (e[3], e[4]), default=None)
            if best is not None:
                row["cancel_time"] = from_micros(best[3])
                row["cancel_message_id"] = best[4]
                row["cancel_event"] = best[5]
                row["cancel_also_start"] = best[6]

    def _span(self, row: Mapping[str, Any]) -> Span | None:
        trigger = self.triggers.get(row["trigger"])
        if row["status"] != "pending" or trigger is None or not trigger.cancel_on:
            return None
        return Span(
            row["trigger"],
            row["customer_id"],
            row["entity_key"],
            to_micros(row["start_time"]),
            to_micros(row["due_at"]),
            row["start_message_id"],
        )

    def _journaled(self, conn: sa.Connection, spans: Sequence[Span]) -> CancelWindow:
        """Cancel events below memory's floor for these instances (starts later than the
        lateness contract), read from the journal once for all of them."""
        found = CancelWindow(self.across)
        if not spans:
            return found
        lo = min(s.start for s in spans)
        hi = max(self.cancels.floors.at.get(s.trigger, lo) for s in spans)
        customers = {(s.trigger, s.customer_id) for s in spans}
        keys = {(s.trigger, s.entity_key) for s in spans if s.trigger in self.across}
        for row in journal.rows_between(conn, journal.CANCEL, lo, hi):
            found.add(
                (
                    e
                    for e in row.cancels()
                    if (e[0], e[1]) in customers or (keys and (e[0], e[2]) in keys)
                ),
                forget=False,
            )
        return found

    def _load(self, conn: sa.Connection) -> None:
        latest = store.max_event_time(conn)
        frontier = None if latest is None else to_micros(latest)
        cancel_floors, count_floors = self._floors(frontier)
        self.cancels.floors.at.update(cancel_floors)
        self.counted.floors.at.update(count_floors)
        self._seq = journal.newest_seq(conn)
        lows = [*cancel_floors.values(), *count_floors.values()]
        if frontier is not None and lows:
            for kind in (journal.CANCEL, journal.COUNT):
                for row in journal.rows_between(conn, kind, min(lows), frontier + 2**40):
                    self._add_row(row)
        self._loaded = True

    def _add_row(self, row: journal.Row) -> None:
        if row.kind == journal.CANCEL:
            self.cancels.add(e for e in row.cancels() if self.cancels.floors.covers(e[0], e[3]))
        else:
            events = row.counts()
            self.counted.add(
                (e for e in events if self.counted.floors.covers(e[0], e[3])), row.journal_id
            )

    def _floors(self, frontier: int | None) -> tuple[dict[str, int], dict[str, int]]:
        """Per trigger, from when cancel and counted events must stay in memory.

        A start is never later than the allowed lateness behind the newest event, so
        it needs cancels from there on; a follow-up starts from its parent's start,
        a chain of waits (and a day of quiet hours each) further back; a counted
        event needs its window before that.
        """
        if frontier is None:
            return {}, {}
        lateness = self.settings.allowed_lateness + self.settings.priority_hold
        cancels, counts = {}, {}
        for name, trigger in self.triggers.items():
            back = max(lateness, _MEMORY) + self.chains.get(name, timedelta(0))
            cancels[name] = frontier - back // _US
            if trigger.count is not None:
                back = max(lateness, _COUNT_MEMORY) + trigger.count.within
                counts[name] = frontier - back // _US
        return cancels, counts
