"""Cart abandonment: start, wait, cancel matched by cart_id, follow-up, late events."""

from __future__ import annotations

from typing import Any

from sync.store.state import StateStore
from tests.sync.triggers.timeline import at, engine, outcomes, run, track, triggers

CART: dict[str, Any] = {
    "name": "cart_abandoned",
    "on": ["Product Added", "Checkout Started"],
    "key": "properties.cart_id",
    "wait": "30m",
    "cancel_on": "Order Completed",
    "priority": 100,
    "emit": {
        "event": "Cart Abandoned",
        "properties": {
            "cart_id": "properties.cart_id",
            "first_name": {"path": "customer.traits.first_name", "fallback": "there"},
        },
    },
}
FOLLOW_UP: dict[str, Any] = {
    "name": "cart_follow_up",
    "after": "cart_abandoned",
    "key": "properties.cart_id",
    "wait": "24h",
    "cancel_on": "Order Completed",
    "emit": {
        "event": "Cart Reminder",
        "properties": {"cart_id": "properties.cart_id", "discount_code": {"value": "COMEBACK10"}},
    },
}


def test_fires_30_minutes_after_an_unpurchased_cart(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    add = track("Product Added", 0, cart_id="k1", mid="add")
    assert run(eng, [add]) == []
    sent = run(eng, [track("Page Viewed", 31)])
    assert len(sent) == 1
    message = sent[0].message
    assert message.event == "Cart Abandoned"
    assert message.timestamp == at(30)
    assert message.message_id == sent[0].instance_id
    assert message.properties == {"cart_id": "k1", "first_name": "there"}
    assert message.user_id == "ann"
    assert message.traits["email"] == "ann@example.com"
    assert message.source_ref == f"trigger:cart_abandoned:{sent[0].instance_id}"
    assert outcomes(store) == {"cart_abandoned/add": ("fired", "fired")}


def test_order_for_the_same_cart_just_before_due_cancels(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    assert run(eng, [track("Order Completed", 29.99, cart_id="k1", mid="order")]) == []
    assert run(eng, [track("Page Viewed", 60)]) == []
    assert outcomes(store) == {"cart_abandoned/add": ("cancelled", "cancel_event")}


def test_order_exactly_at_due_time_cancels(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    assert run(eng, [track("Order Completed", 30, cart_id="k1")]) == []
    assert outcomes(store)["cart_abandoned/add"] == ("cancelled", "cancel_event")


def test_order_just_after_due_time_does_not_cancel(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    sent = run(eng, [track("Order Completed", 30.01, cart_id="k1")])
    assert [e.message.event for e in sent] == ["Cart Abandoned"]


def test_order_of_another_cart_does_not_cancel(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    sent = run(eng, [track("Order Completed", 10, cart_id="k2"), track("Page Viewed", 40)])
    assert len(sent) == 1


def test_order_without_a_cart_id_cancels_every_cart_of_the_customer(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    assert run(eng, [track("Order Completed", 10), track("Page Viewed", 40)]) == []


def test_order_of_another_customer_does_not_cancel(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1")])
    sent = run(eng, [track("Order Completed", 10, user="bob", cart_id="k1"), track("X", 40)])
    assert len(sent) == 1


def test_global_key_scope_matches_the_cart_across_customers(store: StateStore) -> None:
    eng = engine(store, triggers({**CART, "key_scope": "global"}))
    run(eng, [track("Product Added", 0, cart_id="k1")])
    sent = run(eng, [track("Order Completed", 10, user="bob", cart_id="k1"), track("X", 40)])
    assert sent == []


def test_late_cancel_within_allowed_lateness_still_cancels(store: StateStore) -> None:
    eng = engine(store, triggers(CART), allowed_lateness="10m")
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    # Event time has reached 0:38, but the watermark is 0:28: nothing decided yet.
    assert run(eng, [track("Page Viewed", 38)]) == []
    # The order (event time 0:20) arrives late and out of order.
    assert run(eng, [track("Order Completed", 20, cart_id="k1"), track("X", 45)]) == []
    assert outcomes(store) == {"cart_abandoned/add": ("cancelled", "cancel_event")}


def test_late_start_event_is_decided_in_event_time(store: StateStore) -> None:
    eng = engine(store, triggers(CART), allowed_lateness="10m")
    run(eng, [track("Page Viewed", 15)])
    # The add (0:10) arrives after an event at 0:15; it is due at 0:40.
    assert run(eng, [track("Product Added", 10, cart_id="k1", mid="add")]) == []
    assert run(eng, [track("Page Viewed", 49)]) == []  # watermark 0:39
    sent = run(eng, [track("Page Viewed", 50)])  # watermark 0:40
    assert [e.message.timestamp for e in sent] == [at(40)]


def test_cancel_after_the_decision_is_too_late(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    assert len(run(eng, [track("Page Viewed", 31)])) == 1
    # Beyond the allowed lateness: the instance is decided and stays fired.
    run(eng, [track("Order Completed", 25, cart_id="k1")])
    assert outcomes(store)["cart_abandoned/add"] == ("fired", "fired")


def test_missing_cart_id_is_recorded_not_dropped(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    assert run(eng, [track("Product Added", 0, mid="add"), track("X", 40)]) == []
    assert outcomes(store) == {"cart_abandoned/add": ("suppressed", "no_key")}


def test_follow_up_fires_24h_after_the_first_email_if_the_cart_is_open(store: StateStore) -> None:
    eng = engine(store, triggers(CART, FOLLOW_UP), now=at(3 * 24 * 60))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    first = run(eng, [track("X", 31)])
    assert [e.trigger for e in first] == ["cart_abandoned"]
    second = run(eng, [track("X", 30 + 24 * 60)])
    assert [e.trigger for e in second] == ["cart_follow_up"]
    assert second[0].message.properties == {"cart_id": "k1", "discount_code": "COMEBACK10"}
    assert second[0].message.timestamp == at(30 + 24 * 60)
    assert second[0].instance_id != first[0].instance_id


def test_follow_up_is_cancelled_by_a_later_purchase(store: StateStore) -> None:
    eng = engine(store, triggers(CART, FOLLOW_UP), now=at(3 * 24 * 60))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="add")])
    assert len(run(eng, [track("X", 31)])) == 1
    assert run(eng, [track("Order Completed", 120, cart_id="k1"), track("X", 2000)]) == []
    assert outcomes(store)["cart_follow_up/add"] == ("cancelled", "cancel_event")


def test_no_follow_up_when_the_first_was_cancelled(store: StateStore) -> None:
    eng = engine(store, triggers(CART, FOLLOW_UP), now=at(3 * 24 * 60))
    run(eng, [track("Product Added", 0, cart_id="k1"), track("Order Completed", 5, cart_id="k1")])
    assert run(eng, [track("X", 3000)]) == []
    assert "cart_follow_up" not in {k.split("/")[0] for k in outcomes(store)}


def test_replaying_the_same_events_emits_nothing_new(store: StateStore) -> None:
    batch = [track("Product Added", 0, cart_id="k1", mid="add"), track("X", 31, mid="x")]
    first = run(engine(store, triggers(CART)), batch)
    again = run(engine(store, triggers(CART)), batch)
    assert len(first) == 1 and again == []


def test_another_add_to_the_same_cart_restarts_the_wait(store: StateStore) -> None:
    spec = {**CART, "cancel_on": ["Order Completed", "Product Added", "Checkout Started"]}
    eng = engine(store, triggers(spec))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="a1")])
    run(eng, [track("Product Added", 20, cart_id="k1", mid="a2")])
    run(eng, [track("Product Added", 25, cart_id="k2", mid="b1")])  # another cart
    assert [e.message.properties["cart_id"] for e in run(eng, [track("X", 45)])] == []
    sent = run(eng, [track("X", 60)])
    assert sorted(e.message.properties["cart_id"] for e in sent) == ["k1", "k2"]
    assert [e.message.timestamp for e in sent if e.message.properties["cart_id"] == "k1"] == [
        at(50)
    ]
    assert outcomes(store)["cart_abandoned/a1"] == ("cancelled", "superseded")


def test_an_event_from_the_future_does_not_advance_the_watermark(store: StateStore) -> None:
    eng = engine(store, triggers(CART), now=at(-40))  # the add is due at 0:30
    run(eng, [track("Product Added", 0, cart_id="k1")])
    assert run(eng, [track("X", 5 * 365 * 24 * 60)]) == []  # a device clock five years ahead
    assert eng.watermark() == at(20)  # wall clock + 1 h at most
