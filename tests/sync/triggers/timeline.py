"""Hand-written timelines for trigger tests: events at minute offsets, one store."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Customer
from mapping.message import parse_message
from mapping.types import Message
from sync.store.state import StateStore
from sync.triggers import TriggerEngine, TriggerEngineSettings, TriggerSettings
from sync.triggers.emit import Emission
from sync.triggers.explain import list_decisions

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def at(minutes: float) -> datetime:
    """T0 + minutes."""
    return T0 + timedelta(minutes=minutes)


def track(
    event: str,
    minutes: float,
    user: str = "ann",
    mid: str | None = None,
    context: dict[str, Any] | None = None,
    **properties: Any,
) -> Message:
    """A track message at T0 + minutes."""
    raw = {
        "type": "track",
        "event": event,
        "messageId": mid or f"m{next(_ids)}",
        "timestamp": at(minutes).isoformat(),
        "userId": user,
        "properties": properties,
        "context": context or {"traits": {"email": f"{user}@example.com"}},
    }
    return parse_message(raw, f"test:{raw['messageId']}")


def customer(user: str, **traits: Any) -> Customer:
    """The customer of `user` (one per user)."""
    return Customer(
        customer_id=f"c-{user}",
        identifiers={"user_id": [user], "email": [f"{user}@example.com"]},
        traits=traits,
    )


def customers(messages: Iterable[Message], **traits: Any) -> dict[str, Customer]:
    """Each message's customer, keyed by message id."""
    return {m.message_id: customer(m.user_id or "anon", **traits) for m in messages}


def triggers(*specs: dict[str, Any]) -> list[TriggerSettings]:
    """Validated triggers."""
    return [TriggerSettings.model_validate(s) for s in specs]


def engine(
    store: StateStore,
    specs: Sequence[TriggerSettings],
    now: datetime | None = None,
    **settings: Any,
) -> TriggerEngine:
    """An engine with a fixed wall clock (default: T0 + 1 day, so nothing is stale)."""
    fixed = now or at(24 * 60)
    base = {"global_cap": None, "allowed_lateness": "0s"}
    config = TriggerEngineSettings.model_validate({**base, **settings})
    return TriggerEngine(store, list(specs), config, clock=lambda: fixed)


def run(eng: TriggerEngine, messages: Sequence[Message], **traits: Any) -> list[Emission]:
    """Observe the messages, then decide what is due; mark emissions delivered."""
    eng.observe(list(messages), customers(messages, **traits))
    out = eng.due()
    eng.mark([e.instance_id for e in out], "delivered")
    return out


def outcomes(store: StateStore) -> dict[str, tuple[str, str | None]]:
    """Decided instances: `trigger/start message id` → (status, reason)."""
    return {
        f"{d.trigger}/{d.start_message_id}": (d.status, d.reason)
        for d in list_decisions(store, limit=None)
    }
