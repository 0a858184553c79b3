"""track_event: defaults, request bodies (spec + SDK valid), bulk grouping, error rows."""

from __future__ import annotations

from typing import Any

from connectors.base import Customer, Record
from connectors.klaviyo.actions import track_event
from mapping.types import RejectedRow

from ..testkit import assert_valid, destination, message, records_of

VIEWED = {
    "type": "track",
    "event": "Product Viewed",
    "messageId": "msg-1",
    "userId": "u-1",
    "anonymousId": "anon-1",
    "timestamp": "2026-07-20T10:00:00.123456Z",
    "context": {"traits": {"email": "ann@example.com", "phone": "+1 415 555 2671"}},
    "properties": {"sku": "G-32", "price": 18.99, "revenue": 18.99, "currency": "USD"},
}


def test_defaults_map_a_track_call_to_a_klaviyo_event() -> None:
    [record] = records_of(destination(), VIEWED)
    body = track_event.build_request(record).body
    assert body == {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"sku": "G-32", "price": 18.99},
                "time": "2026-07-20T10:00:00.123Z",
                "value": 18.99,
                "value_currency": "USD",
                "unique_id": "msg-1",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed Product"}}},
                "profile": {
                    "data": {
                        "type": "profile",
                        "attributes": {
                            "email": "ann@example.com",
                            "phone_number": "+14155552671",
                            "external_id": "u-1",
                            "anonymous_id": "anon-1",
                        },
                    }
                },
            },
        }
    }
    assert record.key == "msg-1"
    assert_valid("create_event", body)


def test_other_event_names_pass_through_and_renames_are_overridable() -> None:
    [plain] = records_of(destination(), {**VIEWED, "event": "Video Played"})
    assert plain.fields["metric"] == "Video Played"
    renamed = destination(metric_names={"Video Played": "Watched Video"})
    assert (
        records_of(renamed, {**VIEWED, "event": "Video Played"})[0].fields["metric"]
        == "Watched Video"
    )


def test_old_events_are_backfilled_so_no_flow_fires() -> None:
    [record] = records_of(destination(), {**VIEWED, "timestamp": "2026-07-01T00:00:00Z"})
    body = track_event.build_request(record).body
    assert body["data"]["attributes"]["backfill"] is True
    assert_valid("create_event", body)
    fresh = records_of(destination(), VIEWED)[0]
    assert "backfill" not in track_event.build_request(fresh).body["data"]["attributes"]


def test_unparseable_phone_is_dropped_with_a_note_not_sent() -> None:
    raw = {**VIEWED, "context": {"traits": {"email": "ann@example.com", "phone": "call me"}}}
    [record] = records_of(destination(), raw)
    profile = track_event.build_request(record).body["data"]["attributes"]["profile"]
    assert "phone_number" not in profile["data"]["attributes"]
    assert record.fields["notes"] == [
        "phone_number dropped: 'call me' is not a phone number in E.164 form"
    ]


def test_customer_identifiers_win_over_the_message() -> None:
    customer = Customer(
        "c-1",
        {"email": ["resolved@example.com"], "user_id": ["u-9"], "klaviyo_profile_id": ["01KP"]},
    )
    [record] = records_of(destination(), VIEWED, customer)
    data = track_event.build_request(record).body["data"]["attributes"]["profile"]["data"]
    assert data["id"] == "01KP"
    assert data["attributes"]["email"] == "resolved@example.com"
    assert data["attributes"]["external_id"] == "u-9"


def test_a_message_without_any_identifier_is_rejected_naming_the_field() -> None:
    out = destination().map(
        message(
            {
                "type": "track",
                "event": "X",
                "userId": "",
                "properties": {},
                "anonymousId": "a",
            }
        ),
        None,
    )
    assert isinstance(out[0], Record)
    bare = destination(mapping={"track_event": {"anonymous_id": {"path": []}}})
    [rejected] = bare.map(message({"type": "track", "event": "X", "anonymousId": "a"}), None)
    assert isinstance(rejected, RejectedRow)
    assert (
        rejected.field == "profile"
        and "required" in rejected.reason
        and rejected.stage == "mapping"
    )


def test_non_numeric_value_is_rejected() -> None:
    [rejected] = destination().map(message({**VIEWED, "properties": {"revenue": "lots"}}), None)
    assert isinstance(rejected, RejectedRow) and rejected.field == "value"


def test_a_string_over_100_kb_is_a_reject_naming_the_property() -> None:
    long = {"notes": [{"text": "x" * 150_000}], "sku": "S-1"}
    [rejected] = destination().map(message({**VIEWED, "properties": long}), None)
    assert isinstance(rejected, RejectedRow) and rejected.field == "properties.notes[0].text"
    assert "Klaviyo allows 100 KB" in rejected.reason


def _event(key: str, email: str, metric: str = "Viewed Product") -> Record:
    raw: dict[str, Any] = {
        **VIEWED,
        "messageId": key,
        "event": metric,
        "context": {"traits": {"email": email}},
    }
    return records_of(destination(), raw)[0]


def test_bulk_body_groups_events_per_profile_and_validates() -> None:
    records = [
        _event("a", "x@example.com"),
        _event("b", "y@example.com"),
        _event("c", "x@example.com"),
    ]
    body = track_event.build_batch(records).body
    entries = body["data"]["attributes"]["events-bulk-create"]["data"]
    assert [len(e["attributes"]["events"]["data"]) for e in entries] == [2, 1]
    assert track_event.groups(records) == [[0, 2], [1]]
    assert_valid("bulk_create_events", body)


BULK = "/data/attributes/events-bulk-create/data"


def test_bulk_error_pointer_names_the_event_and_its_field() -> None:
    records = [
        _event("a", "x@example.com"),
        _event("b", "y@example.com"),
        _event("c", "x@example.com"),
    ]
    error = {
        "errors": [
            {
                "detail": "Invalid time",
                "source": {"pointer": BULK + "/0/attributes/events/data/1/attributes/time"},
            },
            {
                "detail": "Invalid email",
                "source": {"pointer": BULK + "/1/attributes/profile/data/attributes/email"},
            },
        ]
    }
    rows = track_event.rows_from_error(error, records)
    assert [(r.index, r.detail, r.field) for r in rows] == [
        (2, "Invalid time", "time"),
        (1, "Invalid email", "profile.data.attributes.email"),
    ]
