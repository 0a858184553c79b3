"""The trigger engine: observe events, decide due instances, hand out emissions.

Usage by `sync.engine`, per source batch::

    triggers.observe(batch.messages, customers)   # own transaction, idempotent
    for emission in triggers.due():               # decided in event time
        ...send emission.message to emission.destinations...
    triggers.mark(acknowledged_ids, "delivered")  # after the batch commit
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connectors.base import Customer
from mapping.types import Message
from sync.store.state import StateStore
from sync.store.triggers import to_micros, trigger_instances
from sync.triggers import journal, store
from sync.triggers.counting import qualified
from sync.triggers.decide import Decider, Decision
from sync.triggers.emit import Emission, emission_of, start_of
from sync.triggers.matching import key_values
from sync.triggers.memory import Memory
from sync.triggers.observe import Observer, Rows, new_instance
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings, validate_triggers
from sync.triggers.store import ensure_key_index

DELIVERED = frozenset({"delivered", "acknowledged", "fired", "sent"})
_PRUNE_EVERY = timedelta(hours=6)
_QUIET_MARGIN = timedelta(days=1)
_FUTURE = timedelta(hours=1)
RECOVER_AFTER = timedelta(minutes=10)
"""An emission fired this long ago and still not acknowledged was handed out by an engine
that stopped (a crash, a failed run) and is sent again. A younger one may be in flight in
another process sharing the store (`serve` beside `schedule`: every sync's engine emits
what is due), which would send it twice; a live engine acknowledges or rejects what it
hands out within its batch."""
"""Event times further ahead of the wall clock do not advance the watermark."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _validated(triggers: Sequence[TriggerSettings | Mapping[str, Any]]) -> list[TriggerSettings]:
    return [
        t if isinstance(t, TriggerSettings) else TriggerSettings.model_validate(t) for t in triggers
    ]


class TriggerEngine:
    """Decides `[[triggers]]` in event time against the state store.

    Args:
        store: The state store; pending instances live in its tables.
        triggers: The configured triggers (plain `[[triggers]]` tables are validated).
        settings: `[trigger_engine]` (clock, allowed lateness, global cap, priority hold).
        clock: Wall clock (injected by tests); used for freshness and `clock = "wall"`.
    """

    def __init__(
        self,
        store: StateStore,
        triggers: Sequence[TriggerSettings | Mapping[str, Any]],
        settings: TriggerEngineSettings | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings or TriggerEngineSettings()
        specs = _validated(triggers)
        validate_triggers(specs, self.settings)
        self.store = store
        self.triggers = {t.name: t for t in specs}
        self.clock = clock
        wants_content = any(t.emit.recommendations for t in specs)
        self._observer = Observer(specs, self.settings.activity, wants_content)
        self._decider = Decider(self.triggers, self.settings, clock)
        self._children = {name: [t for t in specs if t.after == name] for name in self.triggers}
        self._handed_out: set[str] = set()
        self._fired: list[dict[str, Any]] = []  # what the current `due` call fired
        self._pruned_at: datetime | None = None
        self._counts: Counter[str] = Counter()
        self._across = frozenset(t.name for t in specs if t.key_scope == "global" and t.key)
        chains = {t.name: self._chain_wait(t) - t.wait + _QUIET_MARGIN for t in specs if t.after}
        self._memory = Memory(self.triggers, self.settings, self._across, chains)
        if self._across:  # committed now: a preview's transaction would roll it back
            with store.engine.begin() as conn:
                ensure_key_index(conn)

    # observe ------------------------------------------------------------------------

    def observe(self, messages: Sequence[Message], customers: Mapping[str, Customer]) -> None:
        """Record starts, cancels, counts and product activity of a batch.

        Written in one transaction with insert-or-ignore on deterministic keys, so a
        crash between this and the batch commit (the batch is read again) neither
        loses nor doubles an instance. The in-memory windows learn the batch only
        once it is committed.
        """
        rows = self._observer.rows(messages, customers)
        counts = self._counts.copy()
        try:
            with self.store.engine.begin() as conn:
                ids = self._write(conn, rows, live=True)
        except BaseException:
            self._counts = counts
            self._memory.forget()  # it may hold the uncommitted batch's cancels
            raise
        frontier = None if rows.latest is None else to_micros(rows.latest)
        self._memory.remember((c.event for c in rows.counts), ids, frontier)

    def _write(
        self, conn: sa.Connection, rows: Rows, *, live: bool = False
    ) -> tuple[str | None, str | None]:
        """Write a batch's rows. `live`: the batch's cancels join the cancel window now
        (the caller forgets the windows if the transaction fails); a preview keeps them
        apart."""
        self._memory.sync(conn)
        if live:
            self._memory.cancels.add(rows.cancels)
        ids = journal.write_cancels(conn, rows.cancels), journal.write_counts(conn, rows.counts)
        store.mark_cancelled(conn, rows.cancels, self._across)  # earlier batches' instances
        store.write_activity(conn, rows.activity)
        if rows.counts:
            counted = qualified(conn, self.triggers, rows.counts, self._memory.counted, ids[1])
            rows.instances.extend(counted)  # counted below with the others
        self._counts["started"] += sum(1 for r in rows.instances if r["status"] == "pending")
        self._counts["suppressed.no_key"] += sum(1 for r in rows.instances if r["reason"])
        self._counts["ignored.event_time"] += rows.ignored
        if rows.latest is not None:
            # A device with a wrong clock must not decide every pending instance at once
            # (nor move the windows past what later events still need).
            rows.latest = min(rows.latest, self.clock() + _FUTURE)
            store.raise_max_event_time(conn, rows.latest)
        self._memory.mark_new(conn, rows.instances, () if live else rows.cancels)
        self._decide_cancelled(conn, rows.instances)
        store.insert_ignore(conn, trigger_instances, rows.instances)
        return ids

    def _decide_cancelled(self, conn: sa.Connection, instances: list[dict[str, Any]]) -> None:
        """Decide now the new instances whose cancel no later event can precede.

        Events are never later than the watermark, so a cancel before it stays the
        earliest; "cancelled" depends on nothing else (caps and priorities count only
        what fires), so the decision is the one `due` would make, written with the
        insert instead of as a later update.
        """
        limit = self.watermark(conn)
        if limit is None:
            return
        now = self.clock()
        for row in instances:
            mark = store.mark_of(row)
            if row["status"] != "pending" or mark is None or mark["event_time"] >= limit:
                continue
            decision = Decider.cancelled(mark)
            row.update(self._update(row, decision, now), start=store.DROPPED)
            del row["id"]
            self._count(decision)

    # watermark ----------------------------------------------------------------------

    def watermark(self, conn: sa.Connection | None = None) -> datetime | None:
        """Max event time seen minus allowed lateness (wall: now minus it); None before any."""
        if self.settings.clock == "wall":
            return self.clock() - self.settings.allowed_lateness
        if conn is None:
            with self.store.engine.connect() as own:
                latest = store.max_event_time(own)
        else:
            latest = store.max_event_time(conn)
        return None if latest is None else latest - self.settings.allowed_lateness

    def preview(
        self, messages: Sequence[Message], customers: Mapping[str, Customer]
    ) -> list[Emission]:
        """Dry run: what `observe` then `due` would emit now, leaving no trace.

        Everything runs in one transaction that is rolled back; the run counters are
        left as they were.
        """
        counts = self._counts.copy()
        with self.store.engine.connect() as conn:
            trans = conn.begin()
            try:
                observed = self._observer.rows(messages, customers)
                self._memory.staged = list(observed.cancels)  # follow-ups need them
                self._write(conn, observed)
                limit = self.watermark(conn)
                if limit is not None:
                    self._decide_in(conn, limit)
                rows = store.undelivered(conn, decided_before=self.clock() - RECOVER_AFTER)
                known = {r["instance_id"] for r in rows}
                rows += [r for r in self._fired if r["instance_id"] not in known]
            finally:
                trans.rollback()
                self._counts = counts
                self._memory.staged = []
                self._fired = []
        return [emission_of(r) for r in rows]

    # decide -------------------------------------------------------------------------

    def due(self, watermark: datetime | None = None) -> list[Emission]:
        """Decide every instance the watermark has passed; return emissions to send.

        Args:
            watermark: An upper bound on the watermark (None: the engine's own,
                `watermark()`). The engine never decides beyond its own watermark.

        Returns:
            Newly fired emissions, plus fired ones an engine that stopped never had
            acknowledged (`RECOVER_AFTER` after their firing).
        """
        self._fired = []  # only what this call decides (not a preview's)
        # One transaction: decisions, pruning and the read of what to send commit once.
        with self.store.engine.begin() as conn:
            limit = self.watermark(conn)
            if limit is not None and watermark is not None:
                limit = min(limit, watermark)
            if limit is not None:
                self._decide_in(conn, limit)
                self._maybe_prune(conn, limit)
            # Fired but never acknowledged by an engine that stopped: old enough that no
            # live engine has it in flight. What this engine fires comes from memory.
            rows = store.undelivered(conn, decided_before=self.clock() - RECOVER_AFTER)
        fired, self._fired = self._fired, []
        known = {r["instance_id"] for r in rows}
        rows += [r for r in fired if r["instance_id"] not in known]
        rows = [r for r in rows if r["instance_id"] not in self._handed_out]
        rows.sort(key=lambda r: (r["due_at"], r["instance_id"]))
        emissions = [emission_of(r) for r in rows]
        self._handed_out.update(e.instance_id for e in emissions)
        return emissions

    def _decide_in(self, conn: sa.Connection, limit: datetime) -> None:
        now = self.clock()
        while marked := store.marked_before(conn, limit):
            # Cancelled by an event no later one can precede: as `_decide_cancelled`.
            decisions = [(row, Decider.cancelled(store.mark_of(row) or {})) for row in marked]
            store.record_decisions(conn, [self._update(r, d, now) for r, d in decisions])
            for _row, decision in decisions:
                self._count(decision)
        upto = limit - self.settings.priority_hold
        while chunk := store.pending_due(conn, upto):
            self._decide_chunk(conn, chunk)

    def _decide_chunk(self, conn: sa.Connection, chunk: list[dict[str, Any]]) -> None:
        loaded = self._decider.load(conn, chunk)
        decided: set[str] = set()
        updates: list[dict[str, Any]] = []
        children: list[dict[str, Any]] = []
        now = self.clock()
        horizon = chunk[-1]["due_at"]
        for row in chunk:
            if children and row["due_at"] >= horizon:
                break  # a follow-up created here comes first or is a rival: reload
            decision = self._decider.decide(row, loaded, decided)
            decided.add(row["instance_id"])
            updates.append(self._update(row, decision, now))
            self._count(decision)
            if decision.status == "fired":
                self._fired.append(
                    {
                        "instance_id": row["instance_id"],
                        "trigger": row["trigger"],
                        "due_at": row["due_at"],
                        "emission": decision.emission,
                        "start_obj": start_of(row),
                    }
                )
                children.extend(self._follow_ups(row))
                if children:
                    horizon = min(c["due_at"] for c in children) - self.settings.priority_hold
        store.record_decisions(conn, updates)
        self._memory.mark_new(conn, children, ())
        store.insert_ignore(conn, trigger_instances, children)
        self._counts["started"] += len(children)

    @staticmethod
    def _update(row: dict[str, Any], decision: Decision, now: datetime) -> dict[str, Any]:
        return {
            "id": row["instance_id"],
            "status": decision.status,
            "reason": decision.reason,
            "detail": decision.detail[:2000] or None,
            "emission": decision.emission,
            "delivery": "pending" if decision.status == "fired" else None,
            "decided_at": now,
        }

    def _count(self, decision: Decision) -> None:
        if decision.status == "fired":
            self._counts["fired"] += 1
            for name in decision.fallbacks:
                self._counts[f"fallback.{name}"] += 1
        elif decision.status == "cancelled":
            self._counts["cancelled"] += 1
        else:
            self._counts[f"suppressed.{decision.reason}"] += 1

    def _follow_ups(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for child in self._children.get(row["trigger"], ()):
            start = start_of(row)
            message = start.get("message") or {}
            keys = key_values(message, child.key) if child.key else [""]
            out.append(
                new_instance(
                    child,
                    row["customer_id"],
                    start,
                    blob=row["start"],
                    start_message_id=row["start_message_id"],
                    start_time=row["start_time"],
                    base_time=row["due_at"],
                    entity_key=keys[0] if keys else "",
                    parent_id=row["instance_id"],
                )
            )
        return out

    # delivery, pruning, report ----------------------------------------------------------

    def mark(self, instance_ids: Sequence[str], decision: str) -> None:
        """Record what the destinations did with emissions.

        Args:
            instance_ids: Emission instance ids.
            decision: `"delivered"` (or `"acknowledged"`/`"fired"`/`"sent"`) once every
                destination acknowledged; `"rejected"` when one rejected it for good.
        """
        if not instance_ids:
            return
        delivery = "delivered" if decision in DELIVERED else decision
        if delivery not in {"delivered", "rejected"}:
            raise ValueError(f"mark: unknown decision {decision!r}")
        with self.store.engine.begin() as conn:
            store.set_delivery(conn, list(instance_ids), delivery)
        self._counts[delivery] += len(instance_ids)

    def decisions_summary(self, *, reset: bool = False) -> dict[str, int]:
        """Counts since this engine started (or the last reset), for the run report.

        Keys: `started`, `fired`, `cancelled`, `suppressed.<reason>`, `delivered`,
        `rejected`, `fallback.<property>`, `ignored.event_time` (events dated before
        1900 or after 8999, which triggers skip).

        Args:
            reset: Start counting afresh after this call (one summary per run).
        """
        summary = dict(sorted((k, v) for k, v in self._counts.items() if v))
        if reset:
            self._counts.clear()
        return summary

    def _maybe_prune(self, conn: sa.Connection, limit: datetime) -> None:
        if self._pruned_at is not None and limit - self._pruned_at < _PRUNE_EVERY:
            return
        store.prune(conn, self._cutoffs(limit))
        self._pruned_at = limit

    def _cutoffs(self, limit: datetime) -> dict[str, datetime]:
        """Oldest event time any still-pending instance can need, per table.

        A pending instance is due after `limit - hold`; its cancel window starts at
        most its chain of waits (+ a day of quiet hours) before that.
        """
        hold, lateness = self.settings.priority_hold, self.settings.allowed_lateness
        oldest_pending = limit - hold
        span = max((self._chain_wait(t) for t in self.triggers.values()), default=timedelta(0))
        within = max(
            (t.count.within for t in self.triggers.values() if t.count), default=timedelta(0)
        )
        return {
            "cancels": oldest_pending - span - _QUIET_MARGIN,
            "counts": oldest_pending - within - lateness,
            "activity": oldest_pending - self._decider.lookback,
            "decisions": limit - max(self.settings.retention, self._decider.cap_window),
        }

    def _chain_wait(self, trigger: TriggerSettings) -> timedelta:
        total = trigger.wait
        parent = trigger.after
        while parent is not None:
            total += self.triggers[parent].wait + _QUIET_MARGIN
            parent = self.triggers[parent].after
        return total
