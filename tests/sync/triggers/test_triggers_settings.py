"""`[[triggers]]` validation and the seed triggers in config.example.toml."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sync.store.state import StateStore
from sync.triggers import TriggerEngine, TriggerEngineSettings, TriggerSettings
from sync.triggers.settings import parse_duration, validate_triggers
from tests.sync.triggers.timeline import at, customers, track

SEEDS = Path(__file__).resolve().parents[3] / "config.example.toml"
EMIT = {"event": "E"}


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_shorthands_and_absence() -> None:
    trigger = TriggerSettings.model_validate(
        {"name": "t", "absence": {"events": "Email Opened", "for": "30d"}, "emit": EMIT}
    )
    assert trigger.on[0].event == ["Email Opened"]
    assert trigger.cancel_on[0].event == ["Email Opened"]
    assert trigger.wait == timedelta(days=30)
    filtered = TriggerSettings.model_validate(
        {"name": "t", "on": {"event": "Order Completed", "where": {"x": 1}}, "emit": EMIT}
    )
    assert filtered.on[0].where == {"x": 1}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "t", "emit": EMIT}, "exactly one of `on`"),
        ({"name": "t", "on": "A", "after": "b", "emit": EMIT}, "exactly one of `on`"),
        ({"name": "t", "after": "b", "emit": EMIT}, "positive `wait`"),
        ({"name": "t", "on": "A", "cancel_key": "x", "emit": EMIT}, "`cancel_key` needs `key`"),
        ({"name": "t", "on": "A", "emit": EMIT, "wiat": "1h"}, "Extra inputs"),
        (
            {
                "name": "t",
                "on": "A",
                "wait": "1h",
                "absence": {"events": "B", "for": "1d"},
                "emit": EMIT,
            },
            "absence replaces on, wait",
        ),
        ({"name": "t", "on": "A", "emit": EMIT, "count": {"min": 1, "within": "1h"}}, "min"),
    ],
)
def test_invalid_triggers_name_the_problem(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TriggerSettings.model_validate(spec)


def test_cross_trigger_checks() -> None:
    a = TriggerSettings.model_validate({"name": "a", "on": "A", "emit": EMIT})
    follow = TriggerSettings.model_validate(
        {"name": "f", "after": "missing", "wait": "1h", "emit": EMIT}
    )
    with pytest.raises(ValueError, match="no trigger named 'missing'"):
        validate_triggers([a, follow])
    with pytest.raises(ValueError, match="used twice"):
        validate_triggers([a, a])
    short = TriggerSettings.model_validate({"name": "f", "after": "a", "wait": "5m", "emit": EMIT})
    with pytest.raises(ValueError, match="exceed priority_hold"):
        validate_triggers([a, short], TriggerEngineSettings(priority_hold=timedelta(minutes=10)))


def _seeds() -> tuple[list[TriggerSettings], TriggerEngineSettings]:
    data = tomllib.loads(SEEDS.read_text(encoding="utf-8"))
    specs = [TriggerSettings.model_validate(t) for t in data["triggers"]]
    return specs, TriggerEngineSettings.model_validate(data["trigger_engine"])


def test_seed_triggers_parse() -> None:
    specs, settings = _seeds()
    validate_triggers(specs, settings)
    names = [t.name for t in specs]
    assert names == [
        "cart_abandoned",
        "cart_follow_up",
        "browse_intent",
        "recent_purchase",
        "inactive_30d",
    ]
    priorities = {t.name: t.priority for t in specs}
    assert (
        priorities["cart_abandoned"]
        == priorities["recent_purchase"]
        > priorities["browse_intent"]
        > priorities["inactive_30d"]
    )


def test_seed_cart_flow_end_to_end(store: StateStore) -> None:
    specs, settings = _seeds()
    eng = TriggerEngine(store, specs, settings, clock=lambda: at(60))
    batch = [
        track("Product Viewed", -60, product_id="p9", name="Boot", url="https://s/p9"),
        track("Product Added", 0, cart_id="k1", product_id="p1", name="Shoe"),
        track("Page Viewed", 45),  # 0:30 due + 10m priority hold + 5m lateness
    ]
    eng.observe(batch, customers(batch, first_name="Ann"))
    [sent] = eng.due()
    assert sent.message.event == "Cart Abandoned"
    props = sent.message.properties
    assert props["cart_id"] == "k1" and props["first_name"] == "Ann"
    assert props["product_name"] == "Shoe"
    assert [p["product_id"] for p in props["recommendations"]] == [
        "p9",
        "bestseller-1",
        "bestseller-2",
    ]


def test_freshness_must_cover_waits_and_quiet_hours() -> None:
    quiet = {"start": "21:00", "end": "08:00"}
    cart = TriggerSettings.model_validate(
        {
            "name": "c",
            "on": "A",
            "wait": "30m",
            "freshness": "6h",
            "quiet_hours": quiet,
            "emit": EMIT,
        }
    )
    with pytest.raises(ValueError, match=r"plus quiet hours \(and an hour for a daylight-saving"):
        validate_triggers([cart])
    # 30 min + 11 h of quiet hours + 1 h for the night the clocks go back.
    late = cart.model_copy(update={"freshness": timedelta(hours=12)})
    with pytest.raises(ValueError, match=r"change\) \(12:30:00\)"):
        validate_triggers([late])
    ok = cart.model_copy(update={"freshness": timedelta(hours=12, minutes=30)})
    follow = TriggerSettings.model_validate(
        {
            "name": "f",
            "after": "c",
            "wait": "24h",
            "freshness": "30h",
            "quiet_hours": quiet,
            "emit": EMIT,
        }
    )
    with pytest.raises(ValueError, match=r"triggers\.f\.freshness"):
        validate_triggers([ok, follow])
