"""Turning a batch of messages into trigger rows: starts, cancels, counts, activity.

Pure apart from the clock: the engine writes the rows with insert-or-ignore, so
observing the same batch twice (a crash before the batch commit) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import Customer
from mapping.paths import get_path
from mapping.types import Message
from sync.store.triggers import to_micros
from sync.triggers.emit import data_view, dumps, snapshot
from sync.triggers.journal import Counted
from sync.triggers.matching import ANY_KEY, EventIndex, instance_id, key_values
from sync.triggers.schedule import plan_due
from sync.triggers.settings import Activity, TriggerSettings
from sync.triggers.window import CancelEvent

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Event times outside [EARLIEST, LATEST) are ignored by triggers (a broken device
clock, a `0001-01-01` default): due times, watermarks and pruning cutoffs are event
times plus or minus durations (at most 100 years each), which must stay inside what a
datetime can hold. A fixed range, not one around the wall clock, so that decisions
stay a function of the events alone."""

PRODUCT_FIELDS = ("name", "sku", "url", "image_url", "price", "currency", "category", "brand")

ProductActivity = tuple[str, str, str, str, int, dict[str, Any]]
"""(customer id, kind `viewed` | `bought`, product id, message id, event time, product)."""


@dataclass(slots=True)
class Rows:
    """Rows one batch adds to the trigger tables."""

    instances: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[CancelEvent] = field(default_factory=list)
    counts: list[Counted] = field(default_factory=list)
    activity: list[ProductActivity] = field(default_factory=list)
    latest: datetime | None = None
    ignored: int = 0  # messages whose event time is outside [EARLIEST, LATEST)


def new_instance(
    trigger: TriggerSettings,
    customer_id: str,
    start: dict[str, Any],
    *,
    blob: bytes | None = None,
    start_message_id: str,
    start_time: datetime,
    base_time: datetime,
    entity_key: str,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """A pending instance row (or an already-suppressed one when its key is missing)."""
    quiet = trigger.quiet_hours
    data = data_view(start) if quiet is not None else {}
    due, planned = plan_due(base_time, trigger.wait, quiet, data)
    missing_key = bool(trigger.key) and not entity_key
    return {
        "instance_id": instance_id(trigger.name, customer_id, start_message_id),
        "trigger": trigger.name,
        "customer_id": customer_id,
        "entity_key": entity_key,
        "start_message_id": start_message_id,
        "start_time": start_time,
        "due_at": due,
        "planned_due": planned,
        "priority": trigger.priority,
        "parent_id": parent_id,
        "start": blob if blob is not None else dumps(start),
        "status": "suppressed" if missing_key else "pending",
        "reason": "no_key" if missing_key else None,
        "detail": f"no value at {', '.join(trigger.key)}" if missing_key else None,
        "emission": None,
        "delivery": None,
        "decided_at": None,
        "cancel_time": None,
        "cancel_message_id": None,
        "cancel_event": None,
        "cancel_also_start": None,
    }


class Observer:
    """Maps messages to rows for the configured triggers."""

    def __init__(
        self, triggers: Sequence[TriggerSettings], activity: Activity, track_activity: bool
    ) -> None:
        self.index = EventIndex.build(triggers)
        self.activity = activity
        self.viewed = set(activity.viewed) if track_activity else set()
        self.bought = set(activity.bought) if track_activity else set()

    def rows(self, messages: Sequence[Message], customers: Mapping[str, Customer]) -> Rows:
        """The rows for one batch (messages without a resolved customer are skipped,
        as are those with an event time outside [EARLIEST, LATEST))."""
        out = Rows()
        known: dict[str, tuple[dict[str, Any], bytes]] = {}  # customer snapshots
        for message in messages:
            if not EARLIEST <= message.timestamp < LATEST:
                out.ignored += 1  # nor may it move the watermark
                continue
            if out.latest is None or message.timestamp > out.latest:
                out.latest = message.timestamp
            customer = customers.get(message.message_id)
            if customer is None or message.type != "track":
                continue
            started = self.index.started(message)
            cancelled = self.index.cancelled(message)
            if started:
                self._starts(message, customer, started, out, known)
            if cancelled:
                names = {t.name for t in started}
                self._cancels(message, customer, cancelled, names, out)
            if message.event in self.viewed or message.event in self.bought:
                self._activity(message, customer, out)
        return out

    def _starts(
        self,
        message: Message,
        customer: Customer,
        triggers: list[TriggerSettings],
        out: Rows,
        known: dict[str, tuple[dict[str, Any], bytes]],
    ) -> None:
        start, blob = snapshot(message, customer, known)
        for trigger in triggers:
            if trigger.count is not None:
                group = (
                    key_values(message.raw, [trigger.count.same]) if trigger.count.same else [""]
                )
                if not group:
                    continue  # cannot count toward "the same value" without a value
                event = (
                    trigger.name,
                    customer.customer_id,
                    group[0],
                    to_micros(message.timestamp),
                    message.message_id,
                )
                out.counts.append(Counted(event, blob))
                continue
            keys = key_values(message.raw, trigger.key) if trigger.key else []
            out.instances.append(
                new_instance(
                    trigger,
                    customer.customer_id,
                    start,
                    blob=blob,
                    start_message_id=message.message_id,
                    start_time=message.timestamp,
                    base_time=message.timestamp,
                    entity_key=keys[0] if keys else "",
                )
            )

    def _cancels(
        self,
        message: Message,
        customer: Customer,
        triggers: list[TriggerSettings],
        starts: set[str],
        out: Rows,
    ) -> None:
        at = to_micros(message.timestamp)
        event = (message.event or "")[:200]
        for trigger in triggers:
            keys = [""]
            if trigger.key:
                keys = key_values(message.raw, trigger.cancel_paths) or [ANY_KEY]
            also = trigger.name in starts
            for key in keys:
                out.cancels.append(
                    (trigger.name, customer.customer_id, key, at, message.message_id, event, also)
                )

    def _activity(self, message: Message, customer: Customer, out: Rows) -> None:
        props = message.properties
        kind = "viewed" if message.event in self.viewed else "bought"
        at = to_micros(message.timestamp)
        items: list[Any] = [props]
        if kind == "bought" and isinstance(props.get("products"), list):
            items = list(props["products"])
        for item in items:
            if not isinstance(item, Mapping):
                continue
            pid = get_path(item, self.activity.product_id) or item.get("sku")
            if pid is None or isinstance(pid, bool) or not isinstance(pid, str | int):
                continue
            product = {k: item[k] for k in PRODUCT_FIELDS if item.get(k) is not None}
            out.activity.append(
                (customer.customer_id, kind, str(pid)[:400], message.message_id, at, product)
            )
