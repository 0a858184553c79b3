"""Payload content a demanding sender produces: money as text, odd types, re-opt-in.

Every record below must build a body the official spec and the klaviyo-api SDK models
accept, or come back as a reject naming the field; nothing is changed silently.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Record
from connectors.klaviyo.actions import ACTIONS, track_event, upsert_profile
from mapping.types import RejectedRow

from ..testkit import FakeKlaviyo, assert_valid, destination, message, records_of


def _mapped(raw: dict[str, Any], **overrides: Any) -> list[Record | RejectedRow]:
    return destination(**overrides).map(message(raw), None)


def _track(properties: dict[str, Any], event: str = "Bought") -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "u-1", "properties": properties}


def _bodies_valid(record: Record) -> None:
    module = ACTIONS[record.action]
    assert_valid(module.build_batch([record]).operation_id, module.build_batch([record]).body)
    if record.action in ("track_event", "placed_order", "upsert_profile"):
        single = module.build_request(record)
        assert_valid(single.operation_id, single.body)


@pytest.mark.parametrize(
    ("revenue", "value"),
    [
        ("$19.99", 19.99),
        ("19.99 USD", 19.99),
        ("USD 1,299.00", 1299.0),
        ("-$5.00", -5.0),
        ("€ 7", 7.0),
        (" 12.5 ", 12.5),
    ],
)
def test_money_written_as_text_is_read_as_the_amount(revenue: str, value: float) -> None:
    [record] = records_of(destination(), _track({"revenue": revenue, "currency": "USD"}))
    assert record.fields["value"] == value
    _bodies_valid(record)


@pytest.mark.parametrize("revenue", ["1.299,00", "1,29", "twelve", "NaN", "inf", "1e999"])
def test_an_amount_that_is_ambiguous_or_not_finite_is_a_reject_naming_value(revenue: str) -> None:
    [row] = _mapped(_track({"revenue": revenue}))
    assert isinstance(row, RejectedRow)
    assert row.field == "value"
    assert repr(revenue) in row.reason


def test_currency_is_sent_as_an_upper_case_iso_code_or_dropped_with_a_note() -> None:
    [lower] = records_of(destination(), _track({"revenue": 5, "currency": "eur"}))
    assert lower.fields["value_currency"] == "EUR"
    [odd] = records_of(destination(), _track({"revenue": 5, "currency": 978}))
    assert odd.fields["value_currency"] is None
    assert odd.fields["notes"] == ["value_currency dropped: '978' is not an ISO 4217 code"]
    _bodies_valid(odd)


def _order(products: list[Any]) -> dict[str, Any]:
    return _track({"order_id": "A", "revenue": 30, "products": products}, "Order Completed")


def test_ordered_product_value_reads_numbers_written_as_text() -> None:
    products = [{"sku": "A", "price": "10.50", "quantity": "2"}, {"sku": "B", "price": "$5"}]
    _, first, second = records_of(destination(), _order(products))
    assert (first.fields["value"], second.fields["value"]) == (21.0, 5.0)
    _bodies_valid(first)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"sku": "A", "price": "ten"}, "properties.products[0].price"),
        ({"sku": "A", "price": 3, "quantity": "two"}, "properties.products[0].quantity"),
        ({"sku": "A", "price": "NaN"}, "properties.products[0].price"),
    ],
)
def test_an_ordered_product_whose_price_or_quantity_is_no_number_is_rejected(
    item: dict[str, Any], field: str
) -> None:
    order, line = _mapped(_order([item]))
    assert isinstance(order, Record) and isinstance(line, RejectedRow)
    assert line.field == field
    assert line.key == "m-1:0"


def test_ordered_product_keys_follow_the_line_so_a_replay_keeps_them() -> None:
    twice = [{"sku": "A", "price": 1}, {"sku": "A", "price": 1}]
    keys = [r.key for r in records_of(destination(), _order(twice))]
    again = [r.key for r in records_of(destination(), _order(twice))]
    assert keys == again == ["m-1", "m-1:0", "m-1:1"]


def _identify(traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "userId": "u-1", "messageId": "i-1", "traits": traits}


def test_profile_text_attributes_given_as_numbers_are_sent_as_text() -> None:
    traits = {
        "first_name": 123,
        "address": {"city": "SF", "postal_code": 94107, "country": "US", "state": 6.0},
    }
    [record] = records_of(destination(), _identify(traits))
    attributes = record.fields["attributes"]
    assert attributes["first_name"] == "123"
    assert attributes["location"] == {
        "city": "SF",
        "zip": "94107",
        "country": "US",
        "region": "6",
    }
    _bodies_valid(record)


def test_a_profile_attribute_that_is_not_text_is_dropped_with_a_note() -> None:
    traits = {"email": "ann@example.com", "title": ["a", "b"], "last_name": {"x": 1}}
    [record] = records_of(destination(), _identify(traits))
    assert "title" not in record.fields["attributes"]
    assert "last_name" not in record.fields["attributes"]
    assert record.fields["notes"] == [
        "last_name dropped: {'x': 1} is not text",
        "title dropped: ['a', 'b'] is not text",
    ]
    _bodies_valid(record)


def test_latitude_and_longitude_may_stay_numbers() -> None:
    overrides: dict[str, Any] = {
        "mapping": {
            "upsert_profile": {
                "location.latitude": {"path": ["traits.lat"]},
                "location.longitude": {"path": ["traits.lon"]},
            }
        }
    }
    [record] = records_of(destination(**overrides), _identify({"lat": 40.7128, "lon": "-74.0"}))
    location = record.fields["attributes"]["location"]
    assert (location["latitude"], location["longitude"]) == (40.7128, "-74.0")
    _bodies_valid(record)


def test_an_address_written_as_one_line_is_kept_as_address1() -> None:
    [record] = records_of(destination(), _identify({"address": "1 Main St, Springfield"}))
    assert record.fields["attributes"]["location"] == {"address1": "1 Main St, Springfield"}


def _consent(message_id: str, at: str, consent: bool) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": "u-1",
        "timestamp": at,
        "traits": {"email": "ann@example.com", "email_consent": consent},
    }


async def _requests(raws: list[dict[str, Any]]) -> list[str]:
    fake = FakeKlaviyo()
    dest = destination(fake, actions=["subscribe", "unsubscribe"])
    for raw in raws:
        for record in records_of(dest, raw):
            await dest.process_record(record)
    await dest.drain()
    await dest.aclose()
    return [path.rsplit("-", 2)[1] for path in fake.paths()]


async def test_a_re_subscribe_after_an_unsubscribe_is_sent_last_so_it_holds() -> None:
    # Ann unsubscribed at 10:00 and signed up again at 10:05: she ends subscribed.
    raws = [
        _consent("s-0", "2026-07-20T09:55:00Z", True),
        _consent("u-1", "2026-07-20T10:00:00Z", False),
        _consent("s-2", "2026-07-20T10:05:00Z", True),
    ]
    assert await _requests(raws) == ["create", "delete", "create"]


async def test_an_unsubscribe_after_every_subscribe_is_still_sent_last() -> None:
    # Out of order in the batch, but the withdrawal (10:10) is the latest word.
    raws = [
        _consent("u-1", "2026-07-20T10:10:00Z", False),
        _consent("s-1", "2026-07-20T10:05:00Z", True),
        _consent("u-0", "2026-07-20T10:00:00Z", False),
    ]
    assert await _requests(raws) == ["create", "delete", "delete"]


def test_unset_on_null_clears_a_standard_attribute_by_sending_null() -> None:
    # patch_properties.unset only removes custom properties; Klaviyo clears a standard
    # attribute such as first_name when it is sent as null.
    traits = {"email": "ann@example.com", "first_name": None, "plan": None}
    [record] = records_of(destination(unset_on_null=["first_name", "plan"]), _identify(traits))
    body = upsert_profile.build_request(record).body["data"]
    assert body["attributes"]["first_name"] is None
    assert body["meta"] == {"patch_properties": {"unset": ["plan"]}}
    _bodies_valid(record)


def _time_from(path: str) -> dict[str, Any]:
    return {"mapping": {"track_event": {"time": {"path": [path]}}}}


@pytest.mark.parametrize("when", ["yesterday", 1721500000])
def test_a_mapped_time_that_is_no_date_time_is_a_reject_not_the_receipt_time(when: Any) -> None:
    [row] = _mapped(_track({"ordered_at": when}), **_time_from("properties.ordered_at"))
    assert isinstance(row, RejectedRow)
    assert row.field == "time"
    assert repr(when) in row.reason and "iso8601" in row.reason


def test_an_old_mapped_time_is_a_backfill_so_no_flow_fires() -> None:
    # Historical orders loaded today: the message is new, the order is two years old.
    raw = _track({"ordered_at": "2024-07-20T09:00:00Z"})
    [record] = records_of(destination(**_time_from("properties.ordered_at")), raw)
    assert record.fields["time"] == "2024-07-20T09:00:00.000Z"
    body = track_event.build_request(record).body["data"]["attributes"]
    assert body["backfill"] is True


def test_properties_mapped_to_something_not_an_object_is_a_reject_naming_it() -> None:
    overrides = {"mapping": {"track_event": {"properties": {"path": ["properties.payload"]}}}}
    [row] = _mapped(_track({"payload": "a string"}), **overrides)
    assert isinstance(row, RejectedRow)
    assert row.field == "properties"
    assert "must be an object" in row.reason


def test_an_ordered_product_over_klaviyos_400_properties_is_a_reject_naming_the_line() -> None:
    # The order carries 400 properties (the limit); a line adds its product's keys.
    many = {f"p{i}": i for i in range(399)}
    raw = _track({**many, "revenue": 3, "products": [{"sku": "A", "price": 1, "name": "x"}]})
    raw["event"] = "Order Completed"
    order, line = _mapped(raw)
    assert isinstance(order, Record) and isinstance(line, RejectedRow)
    assert line.field == "properties.products[0]"
    assert "400" in line.reason
