"""Journey trigger: `POST /customer-journeys/journeys/{j}/steps/{s}/actions/trigger`.

A track event named in `[destinations.<name>.journeys]` (e.g. `Cart Abandoned`, which
the trigger engine emits) enters the member into that journey step.

Mailchimp keeps no key for triggers and offers no way to read one back, so espbridge
writes two marker events on the member around each trigger, both with
`is_syncing = true` (markers never start an automation):

1. `espbridge_journey_intent` before the trigger is sent;
2. `espbridge_journey_sent` after Mailchimp answers 204;

each carrying the record key in `espbridge_key`. When a record comes back uncertain
(pending in the ledger from a run that died), the member's events decide: a `sent`
marker means it was delivered (acknowledged, not resent); no `intent` marker means
the trigger was never sent (sent now); an `intent` marker alone means the trigger
may or may not have reached Mailchimp. That last case, and a connection lost after
the trigger request was written in this run, cannot be resolved through the API:
espbridge then does not send it again (`journey_unconfirmed = "reject"`, the
default) and reports a rejected outcome saying so, so nobody is entered twice and
the operator sees exactly which triggers to check; `"resend"` chooses a possible
duplicate over a possible miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.mailchimp.actions import ApiRequest, BatchLimits, email_field, list_field
from connectors.mailchimp.actions.member_event import KEY_PROPERTY
from connectors.mailchimp.hashing import subscriber_hash
from connectors.mailchimp.settings import MailchimpSettings
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "journey_trigger"
TITLE = "Trigger a Customer Journey step"
INTENT_MARKER = "espbridge_journey_intent"
SENT_MARKER = "espbridge_journey_sent"
FIELDS: dict[str, FieldSpec] = {"email": email_field(), "list_id": list_field()}
DESCRIPTIONS = {
    "email": "The member's email address; the member must be in the audience.",
    "list_id": "The audience of the marker events (else the destination's list_id).",
}
LIMITS = BatchLimits(default=1, maximum=1)


def subscribes(message: Message, settings: MailchimpSettings) -> bool:
    """Track calls whose event name is in the `journeys` table."""
    return message.type == "track" and bool(message.event) and message.event in settings.journeys


def build_request(fields: Mapping[str, Any]) -> ApiRequest:
    """The trigger call for a resolved record."""
    return ApiRequest(
        "POST",
        f"/customer-journeys/journeys/{fields['journey_id']}/steps/{fields['step_id']}"
        "/actions/trigger",
        {"email_address": fields["email"]},
    )


def marker_request(list_id: str, fields: Mapping[str, Any], key: str, name: str) -> ApiRequest:
    """A marker event (`is_syncing`) recording the trigger's progress on the member."""
    return ApiRequest(
        "POST",
        f"/lists/{list_id}/members/{subscriber_hash(fields['email'])}/events",
        {
            "name": name,
            "properties": {
                KEY_PROPERTY: key,
                "journey_id": str(fields["journey_id"]),
                "step_id": str(fields["step_id"]),
                "event": str(fields.get("event", "")),
            },
            "is_syncing": True,
            "occurred_at": fields["occurred_at"],
        },
    )
