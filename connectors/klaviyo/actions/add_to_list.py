"""Add to List: `Audience Entered` (or a mapped list id) → the profile joins a list.

Sent as `POST /api/profile-bulk-import-jobs` with `relationships.lists`, grouped by
list: it adds by email/phone/external_id and never changes consent (the
relationships endpoint would need Klaviyo profile ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions import upsert_profile
from connectors.klaviyo.actions.base import (
    ActionFields,
    ApiRequest,
    BatchLimits,
    MapContext,
    MapResult,
    RowError,
    reject,
    rows_from_pointers,
)
from connectors.klaviyo.actions.subscribe import list_fields
from connectors.klaviyo.defaults import AUDIENCE_ENTERED_EVENTS, LIST_DEFAULTS
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "add_to_list"
DEFAULTS: Mapping[str, FieldSpec] = LIST_DEFAULTS
LIMITS = BatchLimits(max_items=10_000)


class AddToListFields(ActionFields):
    """One profile to add to a list."""

    list_id: str = Field(description="The Klaviyo list id.")
    attributes: dict[str, Any] = Field(description="Profile identifiers.")
    unset: list[str] = Field(default_factory=list, description="Always empty (no trait change).")
    profile_id: str | None = Field(
        default=None, description="Always None (matched by identifiers)."
    )


def subscribes(message: Message, ctx: MapContext) -> bool:
    """`Audience Entered` track events."""
    return (
        message.type == "track" and (message.event or "").strip().lower() in AUDIENCE_ENTERED_EVENTS
    )


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """One list-membership record, or a reject without a list or an identifier."""
    key = f"list:{message.message_id}"
    list_id, ids, notes, fallbacks = list_fields(NAME, message, customer, ctx)
    if not list_id:
        return [reject(message, ctx, "list_id", "no list id (map list_id or set list_id)", key)]
    if not ids:
        return [
            reject(
                message,
                ctx,
                "profile",
                "one of email, phone_number or external_id is required",
                key,
            )
        ]
    fields = {
        "list_id": list_id,
        "attributes": ids,
        "unset": [],
        "profile_id": None,
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
    return (record.fields["list_id"],)


def build_batch(records: Sequence[Record]) -> ApiRequest:
    """A bulk import job adding these profiles to their list."""
    return upsert_profile.build_batch(records, list_id=str(records[0].fields["list_id"]))


def build_request(record: Record) -> ApiRequest:
    """A job of one profile."""
    return build_batch([record])


def rows_from_error(body: Any, records: Sequence[Record]) -> list[RowError]:
    """Rows a 4xx names (`/data/attributes/profiles/data/<i>/...`)."""
    return rows_from_pointers(body, upsert_profile.BULK_COLLECTION, len(records))


FIELDS = AddToListFields
"""The declared fields of this action's records."""
