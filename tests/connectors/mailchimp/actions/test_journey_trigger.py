"""journey_trigger: ids from config, body shape, marker events."""

from __future__ import annotations

from connectors.base import Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import journey_trigger
from tests.connectors.mailchimp.mc_testkit import LIST_ID, message, settings, validate_body


def test_configured_event_triggers_its_journey_step() -> None:
    s = settings(journeys={"Cart Abandoned": {"journey_id": 12, "step_id": 34}})
    dest = MailchimpDestination("mc", s)
    msg = message(
        {
            "type": "track",
            "event": "Cart Abandoned",
            "messageId": "t-1",
            "properties": {"email": "A@example.com"},
        }
    )
    [record] = [r for r in dest.map(msg, None) if isinstance(r, Record)]
    request = journey_trigger.build_request(record.fields)
    assert request.path == "/customer-journeys/journeys/12/steps/34/actions/trigger"
    assert request.json == {"email_address": "a@example.com"}
    assert validate_body(request.method, request.path, request.json) == []


def test_markers_are_syncing_events_carrying_the_key() -> None:
    fields = {
        "email": "a@example.com",
        "journey_id": 1,
        "step_id": 2,
        "event": "Cart Abandoned",
        "occurred_at": "2026-07-20T10:00:00+00:00",
    }
    marker = journey_trigger.marker_request(
        LIST_ID, fields, "t-1:journey_trigger", journey_trigger.INTENT_MARKER
    )
    assert marker.json["is_syncing"] is True  # a marker never starts an automation
    assert marker.json["properties"]["espbridge_key"] == "t-1:journey_trigger"
    assert 2 <= len(marker.json["name"]) <= 30
    assert validate_body(marker.method, marker.path, marker.json) == []
