"""Unsubscribe: always honoured → `POST /api/profile-subscription-bulk-delete-jobs`.

A consent field that says the person withdrew, or an `Unsubscribed` event, sends
`UNSUBSCRIBED` marketing consent for the mapped (or configured) channels, or for every
channel the profile has when it has none of those (≤ 100 profiles per job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions.base import (
    ActionFields,
    ApiRequest,
    BatchLimits,
    Body,
    MapContext,
    MapResult,
    profile_rows_from_error,
    reject,
)
from connectors.klaviyo.actions.subscribe import (
    consent_of,
    list_fields,
    wanted_channels,
)
from connectors.klaviyo.defaults import LIST_DEFAULTS, UNSUBSCRIBE_EVENTS
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "unsubscribe"
DEFAULTS: Mapping[str, FieldSpec] = LIST_DEFAULTS
LIMITS = BatchLimits(max_items=100)


class UnsubscribeFields(ActionFields):
    """One profile to unsubscribe from marketing."""

    list_id: str | None = Field(default=None, description="List the request came from, if any.")
    email: str | None = Field(default=None, description="Email: email marketing UNSUBSCRIBED.")
    phone_number: str | None = Field(default=None, description="Phone: SMS marketing UNSUBSCRIBED.")


def subscribes(message: Message, ctx: MapContext) -> bool:
    """Consent withdrawn, or a `User Unsubscribed` / `Unsubscribed` track event."""
    if message.type == "track" and (message.event or "").strip().lower() in UNSUBSCRIBE_EVENTS:
        return True
    return consent_of(message, ctx) == "unsubscribed"


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """One unsubscribe record (email and/or phone)."""
    key = f"unsubscribe:{message.message_id}"
    list_id, ids, notes, fallbacks = list_fields(NAME, message, customer, ctx)
    if "email" not in ids and "phone_number" not in ids:
        return [
            reject(message, ctx, "profile", "unsubscribe needs an email or a phone number", key)
        ]
    present = {"email": "email" in ids, "sms": "phone_number" in ids}
    channels = [c for c in wanted_channels(message, ctx) if present[c]]
    # Always honoured: with none of the wanted channels, withdraw every channel it has.
    channels = channels or [c for c, here in present.items() if here]
    fields = {
        "list_id": list_id,
        "email": ids.get("email") if "email" in channels else None,
        "phone_number": ids.get("phone_number") if "sms" in channels else None,
        "notes": notes,
    }
    return [
        Record(
            key=key,
            action=NAME,
            fields=fields,
            source_ref=message.source_ref,
            event_time=message.timestamp,
            fallbacks=fallbacks,
        )
    ]


def batch_key(record: Record) -> tuple[Any, ...]:
    """Records of one job share a list."""
    return (record.fields.get("list_id"),)


def _profile(fields: Mapping[str, Any]) -> Body:
    attributes: Body = {k: fields[k] for k in ("email", "phone_number") if fields.get(k)}
    channels = [c for c, k in (("email", "email"), ("sms", "phone_number")) if fields.get(k)]
    attributes["subscriptions"] = {c: {"marketing": {"consent": "UNSUBSCRIBED"}} for c in channels}
    return {"type": "profile", "attributes": attributes}


def build_batch(records: Sequence[Record]) -> ApiRequest:
    """`POST /api/profile-subscription-bulk-delete-jobs` for one list (or none)."""
    first = records[0].fields
    data: Body = {
        "type": "profile-subscription-bulk-delete-job",
        "attributes": {"profiles": {"data": [_profile(r.fields) for r in records]}},
    }
    if first.get("list_id"):
        data["relationships"] = {"list": {"data": {"type": "list", "id": first["list_id"]}}}
    return ApiRequest("bulk_unsubscribe_profiles", {"data": data})


def build_request(record: Record) -> ApiRequest:
    """A job of one profile."""
    return build_batch([record])


rows_from_error = profile_rows_from_error
"""Rows a 4xx names (`/data/attributes/profiles/data/<i>/...`)."""


FIELDS = UnsubscribeFields
"""The declared fields of this action's records."""
