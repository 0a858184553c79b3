"""Reading decisions back: `espbridge triggers list` and `espbridge triggers explain`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from sync.store.state import StateStore
from sync.store.triggers import trigger_instances
from sync.triggers.store import row_dict

REASONS = {
    "cancel_event": "an exit event matched before the due time",
    "superseded": "a later start event of the same trigger restarted the wait",
    "cap": "the trigger's per-customer cap was reached",
    "global_cap": "the cross-trigger cap was reached",
    "priority": "a higher-priority trigger takes the slot",
    "stale": "the start event was too old at decision time",
    "no_consent": "no marketing consent",
    "quiet_hours": "due inside the customer's quiet hours",
    "missing_field": "a required emitted property had no value and no fallback",
    "no_key": "the start event has no entity key",
    "unknown_trigger": "the trigger is no longer configured",
}


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One trigger instance as stored: pending, or decided with its reason."""

    instance_id: str
    trigger: str
    customer_id: str
    entity_key: str
    start_message_id: str
    start_time: datetime
    due_at: datetime
    planned_due: datetime
    status: str
    reason: str | None
    detail: str | None
    delivery: str | None
    decided_at: datetime | None
    parent_id: str | None
    emitted: Mapping[str, Any] | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DecisionRecord:
        """From a `trigger_instances` row."""
        emission = orjson.loads(row["emission"]) if row.get("emission") else {}
        names = [f.name for f in cls.__dataclass_fields__.values() if f.name != "emitted"]
        return cls(**{n: row[n] for n in names}, emitted=emission.get("raw"))


def list_decisions(
    store: StateStore,
    *,
    trigger: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    instance_id: str | None = None,
    since: datetime | None = None,
    include_pending: bool = False,
    limit: int | None = 50,
) -> list[DecisionRecord]:
    """Decisions, latest due time first, filtered as asked.

    Args:
        store: The state store.
        trigger: Only this trigger.
        customer_id: Only this customer.
        status: `fired`, `cancelled`, `suppressed` (or `pending`).
        instance_id: Only this instance (the emitted unique_id).
        since: Only instances due at or after this time.
        include_pending: Also list instances not decided yet.
        limit: At most this many (None: all).
    """
    t = trigger_instances
    query = sa.select(t).order_by(t.c.due_at.desc(), t.c.instance_id)
    filters = {
        t.c.trigger: trigger,
        t.c.customer_id: customer_id,
        t.c.status: status,
        t.c.instance_id: instance_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(t.c.due_at >= since)
    if not include_pending and status is None and instance_id is None:
        query = query.where(t.c.status != "pending")
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        return [DecisionRecord.of(row_dict(r)) for r in conn.execute(query)]


def decision_counts(store: StateStore, *, since: datetime | None = None) -> dict[str, int]:
    """Instances by `status.reason` (e.g. `suppressed.cap`), for reports."""
    t = trigger_instances
    query = sa.select(t.c.status, t.c.reason, sa.func.count()).group_by(t.c.status, t.c.reason)
    if since is not None:
        query = query.where(t.c.due_at >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        status if reason in (None, "fired") else f"{status}.{reason}": n
        for status, reason, n in rows
    }


def one_line(record: DecisionRecord) -> str:
    """`due  trigger  customer  status/reason  instance` for a listing."""
    outcome = record.status
    if record.reason not in (None, "fired"):
        outcome += f":{record.reason}"
    return (
        f"{record.due_at:%Y-%m-%d %H:%M:%S}Z  {record.trigger:<24} {record.customer_id:<24} "
        f"{outcome:<28} {record.instance_id}"
    )


def explain(record: DecisionRecord) -> str:
    """A plain-language account of one instance, for `espbridge triggers explain`."""
    lines = [
        f"instance {record.instance_id} of trigger {record.trigger!r}",
        f"  customer:  {record.customer_id}"
        + (f"  (entity {record.entity_key})" if record.entity_key else ""),
        f"  started:   {record.start_time.isoformat()} by message {record.start_message_id}",
    ]
    if record.parent_id:
        lines.append(f"  follow-up of {record.parent_id}")
    due = f"  due:       {record.due_at.isoformat()}"
    if record.planned_due != record.due_at:
        due += f" (moved out of quiet hours from {record.planned_due.isoformat()})"
    lines.append(due)
    if record.status == "pending":
        lines.append("  decision:  pending (the watermark has not passed the due time)")
        return "\n".join(lines)
    decision = record.status
    if record.reason in REASONS:
        decision += f" ({record.reason}: {REASONS[record.reason]})"
    lines.append(f"  decision:  {decision}")
    if record.detail:
        lines.append(f"  because:   {record.detail}")
    if record.emitted:
        lines.append(
            f"  emitted:   {record.emitted.get('event')!r} as unique_id {record.instance_id}"
            f" (delivery: {record.delivery})"
        )
    return "\n".join(lines)
