"""Count triggers: which counted events have enough company inside their window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from sync.triggers import store
from sync.triggers.matching import key_values
from sync.triggers.observe import new_instance
from sync.triggers.settings import TriggerSettings


def qualified(
    conn: sa.Connection,
    triggers: Mapping[str, TriggerSettings],
    added: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Instances of count triggers: each counted event whose window holds enough.

    A late event can make later stored events qualify, so every stored event within
    one window of an added one is evaluated again (instance inserts are idempotent).
    """
    out: list[dict[str, Any]] = []
    by_trigger: dict[str, list[dict[str, Any]]] = {}
    for row in added:
        by_trigger.setdefault(row["trigger"], []).append(row)
    for name, new in by_trigger.items():
        trigger = triggers[name]
        rule = trigger.count
        assert rule is not None
        since: dict[tuple[str, str], datetime] = {}
        for r in new:
            pair = (r["customer_id"], r["group_key"])
            since[pair] = min(since.get(pair, r["event_time"]), r["event_time"])
        groups = set(since)
        lo = min(r["event_time"] for r in new) - rule.within
        hi = max(r["event_time"] for r in new) + rule.within
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in store.count_rows(conn, name, {c for c, _ in groups}, lo, hi):
            if (row["customer_id"], row["group_key"]) in groups:
                found.setdefault((row["customer_id"], row["group_key"]), []).append(row)
        hits: list[dict[str, Any]] = []
        for (customer_id, group), events in found.items():
            events.sort(key=lambda r: (r["event_time"], r["message_id"]))
            first = 0
            for last, event in enumerate(events):
                while events[first]["event_time"] < event["event_time"] - rule.within:
                    first += 1
                ahead = last + 1
                while ahead < len(events) and events[ahead]["event_time"] == event["event_time"]:
                    ahead += 1
                # Only windows ending at or after a new event can have changed.
                if ahead - first >= rule.min and event["event_time"] >= since[(customer_id, group)]:
                    hits.append(event)
        starts = store.count_starts(conn, name, hits) if hits else {}
        for event in hits:
            when = event["event_time"]
            event["start"] = starts[
                (event["customer_id"], event["group_key"], when, event["message_id"])
            ]
            out.append(_counted(trigger, event["customer_id"], event["group_key"], event))
    return out


def _counted(
    trigger: TriggerSettings, customer_id: str, group: str, event: dict[str, Any]
) -> dict[str, Any]:
    start = orjson.loads(event["start"])
    message = start.get("message") or {}
    keys = [group] if group else key_values(message, trigger.key)
    return new_instance(
        trigger,
        customer_id,
        start,
        blob=event["start"],
        start_message_id=event["message_id"],
        start_time=event["event_time"],
        base_time=event["event_time"],
        entity_key=keys[0] if keys else "",
    )
