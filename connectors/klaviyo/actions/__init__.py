"""The Klaviyo actions: one module per action, each declaring fields, defaults,
subscription, batch limits, request builders and error-row mapping."""

from __future__ import annotations

from types import ModuleType

from connectors.klaviyo.actions import (
    add_to_list,
    placed_order,
    subscribe,
    track_event,
    unsubscribe,
    upsert_profile,
)

ACTIONS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (track_event, placed_order, upsert_profile, subscribe, unsubscribe, add_to_list)
}

__all__ = ["ACTIONS"]
