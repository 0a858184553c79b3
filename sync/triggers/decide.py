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
from sync.triggers.emit import build, data_view
from sync.triggers.matching import ANY_KEY
from sync.triggers.schedule import customer_zone, in_quiet_hours
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings

_CONSENTED = {"true", "yes", "1", "subscribed", "granted", "opted_in", "opt_in"}


@dataclass(slots=True)
class Decision:
    """The outcome of one instance."""

    status: str  # fired | cancelled | suppressed
    reason: str  # fired | cancel_event | cap | global_cap | priority | stale | no_consent | …
    detail: str = ""
    emission: dict[str, Any] | None = None
    fallbacks: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Chunk:
    """What a chunk of due instances needs from the store, loaded in a few queries."""

    cancels: dict[str, list[dict[str, Any]]]
    history: dict[str, list[dict[str, Any]]]
    rivals: dict[str, list[dict[str, Any]]]
    activity: dict[str, list[dict[str, Any]]]


def consented(value: Any) -> bool:
    """True for true-like consent values (True, 1, "yes", "subscribed", …)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _CONSENTED


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
        self.lookback = max(
            (t.emit.recommendations.lookback for t in triggers.values() if t.emit.recommendations),
            default=timedelta(0),
        )

    def load(self, conn: sa.Connection, chunk: Sequence[dict[str, Any]]) -> Chunk:
        """Everything the chunk's decisions read, in a few queries."""
        hold = self.settings.priority_hold
        customers = {row["customer_id"] for row in chunk}
        first, last = chunk[0]["due_at"], chunk[-1]["due_at"]
        rivals: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if hold > timedelta(0):
            for row in store.pending_between(conn, customers, first, last + hold):
                rivals[row["customer_id"]].append(row)
        subjects = list(chunk) + [r for rows in rivals.values() for r in rows]
        cancels: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in store.cancels_for(
            conn,
            {r["trigger"] for r in subjects},
            customers,
            {r["entity_key"] for r in subjects if self._global(r["trigger"])},
            min(r["start_time"] for r in subjects),
            max(r["due_at"] for r in subjects),
        ):
            cancels[row["trigger"]].append(row)
        history: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in store.fired_since(conn, customers, first - self.cap_window):
            history[row["customer_id"]].append(row)
        activity: dict[str, list[dict[str, Any]]] = defaultdict(list)
        wanting = {r["customer_id"] for r in chunk if self._wants_content(r["trigger"])}
        if wanting:
            for row in store.activity_for(conn, wanting, first - self.lookback, last):
                activity[row["customer_id"]].append(row)
        return Chunk(cancels, history, rivals, activity)

    def _global(self, trigger: str) -> bool:
        found = self.triggers.get(trigger)
        return found is not None and found.key_scope == "global" and bool(found.key)

    def _wants_content(self, trigger: str) -> bool:
        found = self.triggers.get(trigger)
        return found is not None and found.emit.recommendations is not None

    def cancelled_by(self, row: Mapping[str, Any], chunk: Chunk) -> dict[str, Any] | None:
        """The earliest cancel event of this instance with event time in [start, due]."""
        keys = {row["entity_key"], ANY_KEY}
        scope_global = self._global(row["trigger"])
        best: dict[str, Any] | None = None
        for c in chunk.cancels.get(row["trigger"], ()):
            if c["entity_key"] not in keys:
                continue
            if c["customer_id"] != row["customer_id"] and not (
                scope_global and c["entity_key"] == row["entity_key"]
            ):
                continue
            if not row["start_time"] <= c["event_time"] <= row["due_at"]:
                continue
            if c["message_id"] == row["start_message_id"]:
                continue
            if c["also_start"] and (c["event_time"], c["message_id"]) <= (
                row["start_time"],
                row["start_message_id"],
            ):
                continue  # an earlier (or tied, lower-id) start does not cancel a later one
            if best is None or (c["event_time"], c["message_id"]) < (
                best["event_time"],
                best["message_id"],
            ):
                best = c
        return best

    def decide(self, row: dict[str, Any], chunk: Chunk, decided: set[str]) -> Decision:
        """Decide one instance; on firing, record it in the chunk's cap history."""
        trigger = self.triggers.get(row["trigger"])
        if trigger is None:
            return Decision("suppressed", "unknown_trigger", "the trigger is no longer configured")
        cancel = self.cancelled_by(row, chunk)
        if cancel is not None:
            detail = (
                f"{cancel['event']} {cancel['message_id']} at {cancel['event_time'].isoformat()}"
            )
            return Decision("cancelled", "cancel_event", detail)
        early = self._gate(trigger, row)
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

    def _gate(self, trigger: TriggerSettings, row: Mapping[str, Any]) -> Decision | None:
        now = self.clock()
        if trigger.freshness is not None and now - row["start_time"] > trigger.freshness:
            age = now - row["start_time"]
            return Decision("suppressed", "stale", f"start event is {age} old at decision time")
        data = data_view(row["start"])
        if trigger.consent and not consented(get_path(data, trigger.consent)):
            return Decision("suppressed", "no_consent", f"{trigger.consent} is not true")
        quiet = trigger.quiet_hours
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
                return Decision("suppressed", "cap", f"already fired {same[-1]['instance_id']}")
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
            return Decision("suppressed", "global_cap", f"already fired {ahead[-1]['instance_id']}")
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
