"""member_event: name normalisation, string properties, UTC occurred_at, spec shape."""

from __future__ import annotations

import pytest

from connectors.base import Record, Suppressed
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import member_event
from mapping.types import RejectedRow
from tests.connectors.mailchimp.mc_testkit import LIST_ID, message, settings, validate_body


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Cart Abandoned", "cart_abandoned"),
        ("Order Completed (web)", "order_completed_web"),
        ("Café visité", "cafe_visite"),
        ("local testing", "local_testing"),
        ("22", "22"),
        ("already_ok-name", "already_ok-name"),
        ("  --Signed Up!!  ", "--signed_up"),
        ("A very long event name that keeps going", "a_very_long_event_name_that_ke"),
        ("Event name more than 30 chars ab", "event_name_more_than_30_chars"),
    ],
)
def test_event_names_are_normalised_to_2_to_30_allowed_characters(name: str, expected: str) -> None:
    normalised = member_event.normalise_name(name)
    assert normalised == expected
    assert 2 <= len(normalised) <= 30


@pytest.mark.parametrize("name", ["E", "!", "  ", "é"])
def test_names_too_short_after_normalising_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="2-30 characters"):
        member_event.normalise_name(name)


def test_track_maps_to_an_event_with_string_properties_and_utc_time() -> None:
    dest = MailchimpDestination("mc", settings())
    msg = message(
        {
            "type": "track",
            "messageId": "msg-7",
            "event": "Cart Abandoned",
            "timestamp": "2019-11-15T15:56:53+05:30",
            "properties": {"total": 42.0, "items": [{"sku": "G"}], "gift": False, "note": None},
            "context": {"traits": {"email": "Ann@Example.com"}},
        }
    )
    [record] = [r for r in dest.map(msg, None) if isinstance(r, Record)]
    assert record.key == "msg-7:member_event"
    request = member_event.build_request(LIST_ID, record.fields, False)
    assert request.method == "POST" and request.path.endswith("/events")
    assert request.json == {
        "name": "cart_abandoned",
        "properties": {
            "total": "42.0",
            "items": '[{"sku":"G"}]',
            "gift": "false",
            "espbridge_key": "msg-7:member_event",
        },
        "is_syncing": False,
        "occurred_at": "2019-11-15T10:26:53+00:00",
    }
    assert validate_body(request.method, request.path, request.json) == []


def test_event_filter_and_journey_events_are_not_member_events_by_default() -> None:
    s = settings(
        events=["Viewed Product", "Cart Abandoned"],
        journeys={"Cart Abandoned": {"journey_id": 1, "step_id": 2}},
    )
    dest = MailchimpDestination("mc", s)

    def actions(event: str) -> list[str]:
        msg = message(
            {"type": "track", "event": event, "context": {"traits": {"email": "a@example.com"}}}
        )
        return [r.action for r in dest.map(msg, None) if isinstance(r, Record)]

    assert actions("Viewed Product") == ["member_event"]
    assert actions("Cart Abandoned") == ["journey_trigger"]
    assert actions("Signed Up") == []


def test_track_without_email_is_suppressed_not_rejected() -> None:
    # An anonymous visitor is not a Mailchimp member: nothing to fix, so no reject.
    dest = MailchimpDestination("mc", settings())
    out = dest.map(message({"type": "track", "event": "Viewed", "userId": "u1"}), None)
    assert out == [Suppressed(out[0].key, "no_email")]
    assert out[0].key.endswith(":member_event")


def test_read_back_finds_our_key_in_event_properties() -> None:
    page = {
        "events": [
            {"name": "x", "properties": {"espbridge_key": "k1"}},
            {"name": "y", "properties": {}},
        ]
    }
    assert list(member_event.keys_in(page)) == [("x", "k1")]
    read = member_event.build_read_request(LIST_ID, "a@example.com", 1000)
    assert read.params == {"count": 1000, "offset": 1000}


def test_an_overridden_time_path_is_converted_to_utc_or_rejected() -> None:
    s = settings(mapping={"member_event": {"occurred_at": {"path": "properties.at"}}})
    dest = MailchimpDestination("mc", s)

    def fields_for(at: str) -> object:
        msg = message(
            {
                "type": "track",
                "event": "Viewed",
                "properties": {"at": at},
                "context": {"traits": {"email": "a@example.com"}},
            }
        )
        [out] = dest.map(msg, None)
        return out

    record = fields_for("2026-01-02T03:04:05-05:00")
    assert isinstance(record, Record)
    assert record.fields["occurred_at"] == "2026-01-02T08:04:05+00:00"
    reject = fields_for("last tuesday")
    assert isinstance(reject, RejectedRow) and reject.field == "occurred_at"
