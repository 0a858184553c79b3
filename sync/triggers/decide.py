"""Deciding due instances, in event-time order: fired, cancelled or suppressed.

Instances are decided in the order (due time, priority high first, instance id), and
every input to a decision has an event time at or before the watermark that let it be
decided, so the same events always give the same decisions, however they were split
across runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mapping.paths import get_path
from sync.triggers import store
from sync.triggers.emit import build, data_view, start_of
from sync.triggers.schedule import customer_zone, in_quiet_hours
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings

_CONSENTED = {"true", "yes", "1", "subscribed", "granted", "opted_in", "opt_in"}


@dataclass(slots=True)
class Decision:
    """The outcome of one instance."""

    status: str  # fired | cancelled | suppressed
    reason: str  # fired | cancel_event | cap | global_cap | priority | stale | no_consent | …
    detail: str = ""
    emission: bytes | None = None
    fallbacks: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Chunk:
    """What a chunk of due instances needs from the store, loaded in a few queries."""

    cancels: dict[str, dict[str, Any]]  # instance id → its earliest cancel event
    history: dict[str, list[dict[str, Any]]]
    rivals: dict[str, list[dict[str, Any]]]
    activity: dict[str, list[dict[str, Any]]]
    gates: dict[str, Decision | None]  # instance id → its stale/consent/quiet-hours verdict


def consented(value: Any) -> bool:
    """True for true-like consent values (True, 1, "yes", "subscribed", …)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _CONSENTED


def _latest(rows: Sequence[Mapping[str, Any]]) -> str:
    """The instance id of the latest-due row (ties by id), for a stable explanation."""
    return str(max(rows, key=lambda r: (r["due_at"], r["instance_id"]))["instance_id"])


class Decider:
    """Decides chunks of due instances against the state store."""

    def __init__(
        self,
        triggers: Mapping[str, TriggerSettings],
        settings: TriggerEngineSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.triggers = triggers
        self.settings = settings
        self.clock = clock
        windows = [t.cap.per for t in triggers.values() if t.cap]
        if settings.global_cap:
            windows.append(settings.global_cap.per)
        self.cap_window = max(windows, default=timedelta(0))
        # The history every decision reads (global cap), and what only some triggers'
        # own caps read further back.
        self.shared_window = settings.global_cap.per if settings.global_cap else timedelta(0)
        self.own_windows = {
            t.name: t.cap.per
            for t in triggers.values()
            if t.cap is not None and t.cap.per > self.shared_window
        }
        self.lookback = max(
            (t.emit.recommendations.lookback for t in triggers.values() if t.emit.recommendations),
            default=timedelta(0),
        )

    def load(self, conn: sa.Connection, chunk: Sequence[dict[str, Any]]) -> Chunk:
        """Everything the chunk's decisions read, in a few queries.

        Cancels are marked on the instances as they are observed; the gates (stale,
        consent, quiet hours) need nothing more. Caps, rivals and content are loaded
        only for the customers of instances still in the running, usually few of them.
        """
        cancels = {r["instance_id"]: m for r in chunk if (m := store.mark_of(r)) is not None}
        gates: dict[str, Decision | None] = {}
        for row in chunk:
            trigger = self.triggers.get(row["trigger"])
            if trigger is not None and row["instance_id"] not in cancels:
                gates[row["instance_id"]] = self._gate(trigger, row)
        live = [r for r in chunk if r["instance_id"] in gates and gates[r["instance_id"]] is None]
        out = Chunk(cancels, defaultdict(list), defaultdict(list), defaultdict(list), gates)
        if not live:
            return out
        customers = {row["customer_id"] for row in live}
        first, last = live[0]["due_at"], live[-1]["due_at"]
        hold = self.settings.priority_hold
        if hold > timedelta(0) and self.settings.global_cap is not None:
            # Only a higher priority can hold a decision back.
            lowest = min(row["priority"] for row in live)
            rivals = store.pending_between(conn, customers, first, last + hold, above=lowest)
            for row in rivals:
                out.rivals[row["customer_id"]].append(row)
                mark = store.mark_of(row)
                if mark is not None:
                    out.cancels[row["instance_id"]] = mark
        longer = {name: first - per for name, per in self.own_windows.items()}
        for row in store.fired_since(conn, customers, first - self.shared_window, longer):
            out.history[row["customer_id"]].append(row)
        wanting = {r["customer_id"] for r in live if self._wants_content(r["trigger"])}
        if wanting:
            for row in store.activity_for(conn, wanting, first - self.lookback, last):
                out.activity[row["customer_id"]].append(row)
        return out

    def _wants_content(self, trigger: str) -> bool:
        found = self.triggers.get(trigger)
        return found is not None and found.emit.recommendations is not None

    @staticmethod
    def cancelled_by(row: Mapping[str, Any], chunk: Chunk) -> dict[str, Any] | None:
        """The earliest cancel event of this instance with event time in [start, due]."""
        return chunk.cancels.get(row["instance_id"])

    @staticmethod
    def cancelled(cancel: Mapping[str, Any]) -> Decision:
        """The decision for an instance whose earliest cancel event is `cancel`."""
        detail = f"{cancel['event']} {cancel['message_id']} at {cancel['event_time'].isoformat()}"
        # A later start of the same trigger restarts the wait (the cart is still in use).
        reason = "superseded" if cancel["also_start"] else "cancel_event"
        return Decision("cancelled", reason, detail)

    def decide(self, row: dict[str, Any], chunk: Chunk, decided: set[str]) -> Decision:
        """Decide one instance; on firing, record it in the chunk's cap history."""
        trigger = self.triggers.get(row["trigger"])
        if trigger is None:
            return Decision("suppressed", "unknown_trigger", "the trigger is no longer configured")
        cancel = self.cancelled_by(row, chunk)
        if cancel is not None:
            return self.cancelled(cancel)
        early = chunk.gates.get(row["instance_id"])
        if early is not None:
            return early
        capped = self._caps(trigger, row, chunk, decided)
        if capped is not None:
            return capped
        built = build(trigger, row, chunk.activity.get(row["customer_id"], ()))
        if built.emission is None:
            return Decision("suppressed", "missing_field", ", ".join(built.missing))
        chunk.history[row["customer_id"]].append(row)
        return Decision("fired", "fired", "", built.emission, built.fallbacks)

    def _gate(self, trigger: TriggerSettings, row: dict[str, Any]) -> Decision | None:
        now = self.clock()
        if trigger.freshness is not None and now - row["start_time"] > trigger.freshness:
            age = now - row["start_time"]
            return Decision("suppressed", "stale", f"start event is {age} old at decision time")
        quiet = trigger.quiet_hours
        if not trigger.consent and not (quiet and quiet.action == "suppress"):
            return None
        data = data_view(start_of(row))
        if trigger.consent and not consented(get_path(data, trigger.consent)):
            return Decision("suppressed", "no_consent", f"{trigger.consent} is not true")
        if quiet is not None and quiet.action == "suppress":
            zone = customer_zone(data, quiet.default_timezone)
            if in_quiet_hours(row["due_at"], quiet, zone):
                return Decision("suppressed", "quiet_hours", f"due inside quiet hours ({zone})")
        return None

    def _caps(
        self, trigger: TriggerSettings, row: Mapping[str, Any], chunk: Chunk, decided: set[str]
    ) -> Decision | None:
        due = row["due_at"]
        history = chunk.history.get(row["customer_id"], [])
        if trigger.cap is not None:
            same = [
                h
                for h in history
                if h["trigger"] == trigger.name and due - trigger.cap.per < h["due_at"] <= due
            ]
            if len(same) >= trigger.cap.max:
                return Decision("suppressed", "cap", f"already fired {_latest(same)}")
        cap = self.settings.global_cap
        if cap is None:
            return None
        ahead = [
            h
            for h in history
            if h["priority"] >= row["priority"] and due - cap.per < h["due_at"] <= due
        ]
        room = cap.max - len(ahead)
        if room <= 0:
            return Decision("suppressed", "global_cap", f"already fired {_latest(ahead)}")
        rivals = [
            r
            for r in chunk.rivals.get(row["customer_id"], ())
            if r["priority"] > row["priority"]
            and r["instance_id"] not in decided
            and due < r["due_at"] <= due + self.settings.priority_hold
            and self.cancelled_by(r, chunk) is None
        ]
        if len(rivals) >= room:
            best = min(rivals, key=lambda r: (r["due_at"], -r["priority"], r["instance_id"]))
            return Decision("suppressed", "priority", f"{best['trigger']} {best['instance_id']}")
        return None
