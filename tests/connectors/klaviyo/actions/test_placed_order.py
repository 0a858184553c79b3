"""placed_order: Order Completed → Placed Order + Ordered Product per line, deterministic ids."""

from __future__ import annotations

from typing import Any

from connectors.klaviyo.actions import placed_order, track_event
from mapping.types import RejectedRow

from ..testkit import assert_valid, destination, message, records_of

ORDER: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "order-msg-7",
    "userId": "u-1",
    "timestamp": "2026-07-20T10:00:00Z",
    "context": {"traits": {"email": "ann@example.com"}},
    "properties": {
        "order_id": "o-1",
        "total": 47.97,
        "currency": "USD",
        "products": [
            {"product_id": "p-1", "sku": "G-32", "name": "Monopoly", "price": 18.99, "quantity": 2},
            {"product_id": "p-2", "sku": "F-15", "name": "Uno", "price": 9.99},
        ],
    },
}


def test_order_fans_out_with_ids_derived_from_the_message_id() -> None:
    records = records_of(destination(), ORDER)
    assert [(r.key, r.fields["metric"]) for r in records] == [
        ("order-msg-7", "Placed Order"),
        ("order-msg-7:0", "Ordered Product"),
        ("order-msg-7:1", "Ordered Product"),
    ]
    assert all(r.action == "placed_order" for r in records)
    order, first, second = (
        track_event.build_request(r).body["data"]["attributes"] for r in records
    )
    assert order["value"] == 47.97 and order["value_currency"] == "USD"
    assert len(order["properties"]["products"]) == 2
    assert first["properties"] == {"order_id": "o-1", **ORDER["properties"]["products"][0]}
    assert first["value"] == 37.98 and second["value"] == 9.99
    assert first["unique_id"] == "order-msg-7:0"
    for record in records:
        assert_valid("create_event", track_event.build_request(record).body)
    assert_valid("bulk_create_events", placed_order.build_batch(records).body)


def test_replaying_an_order_gives_the_same_keys() -> None:
    first = [r.key for r in records_of(destination(), ORDER)]
    again = [r.key for r in records_of(destination(), ORDER)]
    assert first == again


def test_order_completed_is_not_also_a_plain_track_event() -> None:
    records = records_of(destination(), ORDER)
    assert {r.action for r in records} == {"placed_order"}
    only_track = destination(actions=["track_event"])
    [plain] = records_of(only_track, ORDER)
    assert plain.fields["metric"] == "Placed Order"


def test_a_bad_product_line_is_rejected_and_the_rest_sent() -> None:
    raw = {**ORDER, "properties": {**ORDER["properties"], "products": ["oops", {"sku": "A"}]}}
    out = destination().map(message(raw), None)
    rejects = [r for r in out if isinstance(r, RejectedRow)]
    assert [(r.field, r.key) for r in rejects] == [("properties.products[0]", "order-msg-7:0")]
    assert len(out) == 3
