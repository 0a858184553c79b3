"""Count, absence, caps, priority, freshness, consent, quiet hours, content blocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sync.store.state import StateStore
from tests.sync.triggers.timeline import at, engine, outcomes, run, track, triggers

BROWSE: dict[str, Any] = {
    "name": "browse_intent",
    "on": "Product Viewed",
    "count": {"min": 3, "within": "1h", "same": "properties.product_id"},
    "cap": {"max": 1, "per": "24h"},
    "priority": 50,
    "emit": {"event": "Browse Intent", "properties": {"product_id": "properties.product_id"}},
}
INACTIVE: dict[str, Any] = {
    "name": "inactive",
    "absence": {"events": ["Email Opened", "Email Clicked"], "for": "30d"},
    "priority": 10,
    "emit": {"event": "Customer Inactive"},
}
PURCHASE: dict[str, Any] = {
    "name": "recent_purchase",
    "on": "Order Completed",
    "freshness": "24h",
    "priority": 100,
    "emit": {"event": "Recent Purchase", "properties": {"order_id": "properties.order_id"}},
}
DAY = 24 * 60


def views(*minutes: float, product: str = "p1") -> list[Any]:
    return [track("Product Viewed", m, product_id=product, mid=f"v{m}") for m in minutes]


def test_count_fires_on_the_third_view_of_the_same_product(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE))
    sent = run(eng, [*views(0, 20), *views(30, product="p2"), *views(50)])
    assert [(e.message.event, e.message.properties) for e in sent] == [
        ("Browse Intent", {"product_id": "p1"})
    ]
    assert sent[0].message.timestamp == at(50)


def test_a_counted_start_is_reported_once(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE))
    run(eng, views(0, 10, 20))
    assert eng.decisions_summary() == {"delivered": 1, "fired": 1, "started": 1}


def test_count_needs_the_views_inside_the_window(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE))
    assert run(eng, views(0, 40, 61)) == []


def test_count_sees_a_late_view_that_completes_the_window(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE), allowed_lateness="30m")
    assert run(eng, views(0, 50)) == []
    # The view at 0:30 arrives after the one at 0:50: the 0:50 view now qualifies.
    run(eng, views(30))
    sent = run(eng, [track("X", 90)])
    assert [e.message.timestamp for e in sent] == [at(50)]


def test_count_cap_allows_one_per_day(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE))
    sent = run(eng, views(0, 1, 2, 3, 4))
    assert len(sent) == 1
    assert list(outcomes(store).values()).count(("suppressed", "cap")) == 2


def test_absence_fires_after_30_days_without_opens(store: StateStore) -> None:
    eng = engine(store, triggers(INACTIVE), now=at(40 * DAY))
    run(eng, [track("Email Opened", 0, mid="o1"), track("Email Clicked", 5 * DAY, mid="o2")])
    assert run(eng, [track("X", 34 * DAY)]) == []
    sent = run(eng, [track("X", 35 * DAY + 1)])
    assert [e.message.timestamp for e in sent] == [at(35 * DAY)]
    assert outcomes(store) == {
        "inactive/o1": ("cancelled", "superseded"),
        "inactive/o2": ("fired", "fired"),
    }


def test_absence_with_two_opens_in_the_same_instant_fires_once(store: StateStore) -> None:
    eng = engine(store, triggers(INACTIVE), now=at(40 * DAY))
    both = [track("Email Opened", 0, mid="a"), track("Email Clicked", 0, mid="b")]
    assert len(run(eng, [*both, track("X", 31 * DAY)])) == 1


def test_stale_start_event_is_suppressed_not_sent_late(store: StateStore) -> None:
    eng = engine(store, triggers(PURCHASE), now=at(3 * DAY))
    assert run(eng, [track("Order Completed", 0, order_id="o1", mid="o1")]) == []
    assert outcomes(store) == {"recent_purchase/o1": ("suppressed", "stale")}


def test_fresh_start_event_fires(store: StateStore) -> None:
    eng = engine(store, triggers(PURCHASE), now=at(60))
    sent = run(eng, [track("Order Completed", 0, order_id="o1")])
    assert sent[0].message.properties == {"order_id": "o1"}


def test_consent_gate(store: StateStore) -> None:
    spec = {**PURCHASE, "consent": "customer.traits.accepts_marketing"}
    eng = engine(store, triggers(spec), now=at(60))
    assert run(eng, [track("Order Completed", 0, mid="a")], accepts_marketing=False) == []
    assert len(run(eng, [track("Order Completed", 1, mid="b")], accepts_marketing="yes")) == 1
    assert outcomes(store)["recent_purchase/a"] == ("suppressed", "no_consent")


def test_quiet_hours_delay_moves_the_send_to_the_local_morning(store: StateStore) -> None:
    # 12:00 UTC + 30m is 21:30 in Tokyo (UTC+9): inside 21:00-08:00 there.
    spec = {**PURCHASE, "wait": "30m", "quiet_hours": {"start": "21:00", "end": "08:00"}}
    eng = engine(store, triggers(spec), now=at(DAY))
    tokyo = {"timezone": "Asia/Tokyo", "traits": {"email": "ann@example.com"}}
    run(eng, [track("Order Completed", 0, context=tokyo)])
    assert run(eng, [track("X", 600)]) == []
    sent = run(eng, [track("X", 660)])
    assert [e.message.timestamp for e in sent] == [at(11 * 60)]  # 08:00 JST = 23:00 UTC


def test_quiet_hours_suppress(store: StateStore) -> None:
    quiet = {"start": "21:00", "end": "08:00", "action": "suppress"}
    eng = engine(store, triggers({**PURCHASE, "quiet_hours": quiet}), now=at(60))
    tokyo = {"timezone": "Asia/Tokyo"}
    run(eng, [track("Order Completed", 0, mid="a", context=tokyo), track("X", 5)])
    run(eng, [track("Order Completed", 1, mid="b"), track("X", 5)])  # UTC noon: fine
    assert outcomes(store) == {
        "recent_purchase/a": ("suppressed", "quiet_hours"),
        "recent_purchase/b": ("fired", "fired"),
    }


def test_global_cap_lets_the_higher_priority_trigger_win(store: StateStore) -> None:
    eng = engine(
        store,
        triggers(BROWSE, PURCHASE),
        now=at(60),
        global_cap={"max": 1, "per": "12h"},
        priority_hold="15m",
    )
    # Third view at 0:10; an order at 0:20 (higher priority, due 10 minutes later).
    assert run(eng, [*views(0, 5, 10), track("Order Completed", 20, mid="o")]) == []
    sent = run(eng, [track("X", 40)])  # the hold has passed both
    assert [e.trigger for e in sent] == ["recent_purchase"]
    assert outcomes(store)["browse_intent/v10"] == ("suppressed", "priority")


def test_a_global_cap_of_0_turns_it_off(store: StateStore) -> None:
    # "Remove the table to have no global cap", as the docs said, gave the default cap
    # (TOML has no null): a second order's email was suppressed for a user who had none.
    eng = engine(store, triggers(BROWSE, PURCHASE), now=at(60), global_cap={"max": 0})
    sent = run(eng, [*views(0, 5, 10), track("Order Completed", 20, mid="o1")])
    sent += run(eng, [track("Order Completed", 30, mid="o2")])
    assert [e.trigger for e in sent] == ["browse_intent", "recent_purchase", "recent_purchase"]


def test_global_cap_counts_same_or_higher_priority(store: StateStore) -> None:
    eng = engine(store, triggers(BROWSE, PURCHASE), now=at(60), global_cap={"max": 1, "per": "12h"})
    # No hold: browse fires first; the purchase (higher priority) still fires.
    sent = run(eng, [*views(0, 5, 10), track("Order Completed", 20, mid="o1")])
    assert [e.trigger for e in sent] == ["browse_intent", "recent_purchase"]
    # A second order in the window is capped.
    assert run(eng, [track("Order Completed", 30, mid="o2")]) == []
    assert outcomes(store)["recent_purchase/o2"] == ("suppressed", "global_cap")


def test_recommendations_viewed_not_bought_with_bestseller_fallback(store: StateStore) -> None:
    spec = {
        **PURCHASE,
        "freshness": None,
        "on": "Checkout Started",
        "wait": "30m",
        "emit": {
            "event": "Cart Abandoned",
            "recommendations": {"fallback": [{"product_id": "best1"}, {"product_id": "p2"}]},
        },
    }
    eng = engine(store, triggers(spec))
    history = [
        track("Product Viewed", -8 * DAY, product_id="old"),
        track("Product Viewed", 0, product_id="p1", name="Shoe"),
        track("Product Viewed", 1, product_id="p2"),
        track("Product Viewed", 2, product_id="p1", name="Shoe"),
        track("Order Completed", 3, products=[{"product_id": "p2"}]),
        track("Checkout Started", 4),
    ]
    sent = run(eng, [*history, track("X", 40)])
    assert sent[0].message.properties["recommendations"] == [
        {"product_id": "p1", "name": "Shoe"},
        {"product_id": "best1"},
    ]
    assert eng.decisions_summary()["fallback.recommendations"] == 1


def test_required_property_without_value_is_suppressed(store: StateStore) -> None:
    spec = {
        **PURCHASE,
        "emit": {"event": "E", "properties": {"order_id": {"path": "x", "required": True}}},
    }
    eng = engine(store, triggers(spec), now=at(60))
    assert run(eng, [track("Order Completed", 0, mid="o")]) == []
    assert outcomes(store) == {"recent_purchase/o": ("suppressed", "missing_field")}


def test_wall_clock_mode_decides_on_now_minus_lateness(store: StateStore) -> None:
    now = [at(10)]
    eng = engine(store, triggers({**PURCHASE, "wait": "30m"}), now=at(0), clock="wall")
    eng.clock = lambda: now[0]
    eng._decider.clock = eng.clock
    assert run(eng, [track("Order Completed", 0)]) == []
    now[0] = at(31)
    assert len(eng.due()) == 1
    assert eng.watermark() == at(31) - timedelta(0)
