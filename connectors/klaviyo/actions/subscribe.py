"""Subscribe: a profile whose consent field says so → a subscribe job for its list.

`POST /api/profile-subscription-bulk-create-jobs` (≤ 1,000 profiles, one list per
job). A profile is only ever subscribed when its mapped consent field says it
consented; messages older than the freshness window go as `historical_import` with
`consented_at`, so no double opt-in mail or welcome flow fires for old consent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions.base import (
    ActionFields,
    ApiRequest,
    BatchLimits,
    Body,
    MapContext,
    MapResult,
    as_str,
    identifiers,
    iso_time,
    profile_rows_from_error,
    reject,
    resolve_message,
    specs_for,
)
from connectors.klaviyo.defaults import LIST_DEFAULTS
from mapping.fields import FieldSpec
from mapping.paths import get_path
from mapping.types import Message

NAME = "subscribe"
DEFAULTS: Mapping[str, FieldSpec] = {
    **LIST_DEFAULTS,
    "channels": FieldSpec(path=[]),
}
CHANNELS = frozenset({"email", "sms"})
LIMITS = BatchLimits(max_items=1000)
BULK_COLLECTION = "/data/attributes/profiles/data"
Consent = Literal["subscribed", "unsubscribed"]


class SubscribeFields(ActionFields):
    """One profile to subscribe."""

    list_id: str | None = Field(default=None, description="List to subscribe to (else account).")
    email: str | None = Field(default=None, description="Email for the email channel.")
    phone_number: str | None = Field(default=None, description="E.164 phone for SMS.")
    channels: list[str] = Field(description="Channels to subscribe: email, sms.")
    consented_at: str | None = Field(default=None, description="When consent was given.")
    historical_import: bool = Field(default=False, description="Old consent: no opt-in mail.")
    custom_source: str = Field(description="Shown as the consent source in Klaviyo.")


def consent_of(message: Message, ctx: MapContext) -> Consent | None:
    """What the mapped consent field says: subscribed, unsubscribed, or nothing."""
    consent = ctx.settings.consent
    for path in consent.paths:
        value = get_path(message.raw, path)
        if value is None or value == "":
            continue
        text = str(value).strip().lower()
        if value is True or text in {v.lower() for v in consent.subscribed_values}:
            return "subscribed"
        if value is False or text in {v.lower() for v in consent.unsubscribed_values}:
            return "unsubscribed"
        return None
    return None


def subscribes(message: Message, ctx: MapContext) -> bool:
    """Any call whose consent field says the person consented."""
    return consent_of(message, ctx) == "subscribed"


def list_fields(
    action: str, message: Message, customer: Customer | None, ctx: MapContext
) -> tuple[str | None, dict[str, str], list[str], tuple[str, ...]]:
    """(list id, identifiers, notes, fields a fallback filled) shared by subscribe,
    unsubscribe and add_to_list."""
    resolved = resolve_message(specs_for(action, DEFAULTS, ctx), message)
    values = resolved.values
    ids, notes = identifiers(values, customer, ctx, anonymous=False)
    list_id = as_str(values.get("list_id")) or ctx.settings.list_id
    return list_id, ids, notes, tuple(resolved.fallbacks_used)


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """One subscription record, or a reject when no channel can be subscribed."""
    key = f"subscribe:{message.message_id}"
    list_id, ids, notes, fallbacks = list_fields(NAME, message, customer, ctx)
    have = {"email": "email" in ids, "sms": "phone_number" in ids}
    channels = [c for c in wanted_channels(message, ctx) if have.get(c)]
    if not channels:
        wanted = ", ".join(ctx.settings.consent.channels)
        return [
            reject(message, ctx, "profile", f"consent given but no identifier for {wanted}", key)
        ]
    historical = ctx.is_backfill(message.timestamp)
    fields = {
        "list_id": list_id,
        "email": ids.get("email") if "email" in channels else None,
        "phone_number": ids.get("phone_number") if "sms" in channels else None,
        "channels": channels,
        "consented_at": iso_time(message.timestamp) if historical else None,
        "historical_import": historical,
        "custom_source": ctx.settings.custom_source,
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


def wanted_channels(message: Message, ctx: MapContext) -> list[str]:
    """Channels mapped on the message (`channels` field), else the configured ones."""
    mapped = resolve_message(specs_for(NAME, DEFAULTS, ctx), message).values.get("channels")
    if isinstance(mapped, list) and mapped and set(mapped) <= CHANNELS:
        return [str(c) for c in mapped]
    return list(ctx.settings.consent.channels)


def batch_key(record: Record) -> tuple[Any, ...]:
    """Records of one job share a list and the historical flag."""
    return (record.fields.get("list_id"), bool(record.fields.get("historical_import")))


def addresses(record: Record) -> set[tuple[str, str]]:
    """(channel, address) pairs a subscribe or unsubscribe record is about."""
    fields = record.fields
    pairs = {("email", fields.get("email")), ("sms", fields.get("phone_number"))}
    return {(channel, str(address)) for channel, address in pairs if address}


def reoptins(subscribes: Sequence[Record], unsubscribes: Sequence[Record]) -> list[Record]:
    """Subscribes given after the last unsubscribe of the same address and channel.

    An unsubscribe is sent after the subscribes of its batch, so a withdrawal always
    wins over earlier consent; these later ones must go after it, or a person who
    opted in again would be left unsubscribed.
    """
    last: dict[tuple[str, str], datetime] = {}
    for record in unsubscribes:
        for pair in addresses(record):
            last[pair] = max(last.get(pair, record.event_time), record.event_time)
    return [r for r in subscribes if any(r.event_time > last[p] for p in addresses(r) if p in last)]


def _profile(fields: Mapping[str, Any]) -> Body:
    marketing: Body = {"consent": "SUBSCRIBED"}
    if fields.get("consented_at"):
        marketing["consented_at"] = fields["consented_at"]
    attributes: Body = {k: fields[k] for k in ("email", "phone_number") if fields.get(k)}
    attributes["subscriptions"] = {c: {"marketing": dict(marketing)} for c in fields["channels"]}
    return {"type": "profile", "attributes": attributes}


def build_batch(records: Sequence[Record]) -> ApiRequest:
    """`POST /api/profile-subscription-bulk-create-jobs` for one list."""
    first = records[0].fields
    attributes: Body = {"custom_source": first["custom_source"]}
    if first.get("historical_import"):
        attributes["historical_import"] = True
    attributes["profiles"] = {"data": [_profile(r.fields) for r in records]}
    data: Body = {"type": "profile-subscription-bulk-create-job", "attributes": attributes}
    if first.get("list_id"):
        data["relationships"] = {"list": {"data": {"type": "list", "id": first["list_id"]}}}
    return ApiRequest("bulk_subscribe_profiles", {"data": data})


def build_request(record: Record) -> ApiRequest:
    """A job of one profile (Klaviyo has no single-profile subscribe endpoint)."""
    return build_batch([record])


rows_from_error = profile_rows_from_error
"""Rows a 4xx names (`/data/attributes/profiles/data/<i>/...`)."""


FIELDS = SubscribeFields
"""The declared fields of this action's records."""
