"""Track Event: a Segment `track` → one Klaviyo event (metric + properties + profile).

Single: `POST /api/events`. Bulk: `POST /api/event-bulk-create-jobs` (≤ 1,000 events,
≤ 5 MB), events grouped per profile as the bulk schema requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions.amounts import currency_code, number
from connectors.klaviyo.actions.base import (
    ActionFields,
    ApiRequest,
    BatchLimits,
    Body,
    MapContext,
    MapResult,
    RowError,
    as_datetime,
    identifiers,
    iso_time,
    json_size,
    missing_identifier,
    profile_id,
    reject,
    resolve_message,
    rows_from_pointers,
    specs_for,
)
from connectors.klaviyo.defaults import EVENT_DEFAULTS, VALUE_KEYS
from connectors.klaviyo.errors import error_entries, field_of
from mapping.fields import FieldSpec
from mapping.types import Message
from mapping.validate import check_klaviyo_properties

NAME = "track_event"
DEFAULTS: Mapping[str, FieldSpec] = EVENT_DEFAULTS
LIMITS = BatchLimits(max_items=1000, max_bytes=5_000_000)
BULK_COLLECTION = "/data/attributes/events-bulk-create/data"
MAX_METRIC = 127
MAX_PROPERTIES = 400
EPOCH_HINT = ' (for epoch seconds add transform = "iso8601" to the time mapping)'


class EventProfile(BaseModel):
    """Who did it: at least one identifier."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, description="Email address.")
    phone_number: str | None = Field(default=None, description="Phone in E.164 (+15005550006).")
    external_id: str | None = Field(default=None, description="Your user id (Segment userId).")
    anonymous_id: str | None = Field(default=None, description="Segment anonymousId.")


class TrackEventFields(ActionFields):
    """The fields of one Klaviyo event."""

    metric: str = Field(max_length=127, description="Metric name shown in Klaviyo (renamed).")
    properties: dict[str, Any] = Field(description="Event properties, minus value fields.")
    time: str | None = Field(default=None, description="Event time, ISO-8601 UTC.")
    value: float | None = Field(default=None, description="Monetary value (revenue/total).")
    value_currency: str | None = Field(default=None, description="ISO 4217 currency.")
    unique_id: str = Field(description="Deterministic dedup key: the messageId (or parent:index).")
    backfill: bool = Field(default=False, description="True for old events: no flows fire.")
    profile: EventProfile = Field(description="Profile identifiers.")
    profile_id: str | None = Field(default=None, description="Known Klaviyo profile id.")


def subscribes(message: Message, ctx: MapContext) -> bool:
    """Every `track` call except an Order Completed (that is `placed_order`)."""
    if message.type != "track" or not message.event:
        return False
    return (
        "placed_order" not in ctx.settings.actions
        or ctx.metric_name(message.event) != "Placed Order"
    )


def event_fields(
    message: Message,
    customer: Customer | None,
    ctx: MapContext,
    values: Mapping[str, Any],
    *,
    metric: str | None = None,
) -> dict[str, Any] | tuple[str, str]:
    """The fields of one event, or (field, reason) when it cannot be sent.

    Args:
        message: The Segment message.
        customer: Identity resolution's answer, whose identifiers win.
        ctx: Config and clock.
        values: The action's fields, resolved from the message.
        metric: A fixed metric name (fan-out), else the renamed event name.
    """
    profile, notes = identifiers(values, customer, ctx, anonymous=True)
    known_id = profile_id(customer)
    if not profile and not known_id:
        return ("profile", missing_identifier(notes))
    try:
        value = number(values.get("value"))
    except ValueError:
        return ("value", f"value: {values.get('value')!r} is not a number")
    currency, dropped = currency_code(values.get("value_currency"))
    notes.extend([dropped] if dropped else [])
    name = metric or ctx.metric_name(str(values.get("metric_name") or ""))
    if not name or len(name) > MAX_METRIC:
        return ("metric_name", f"metric_name: must be 1 to {MAX_METRIC} characters: {name!r}")
    when = as_datetime(values.get("time"))
    if values.get("time") is not None and when is None:
        return ("time", f"time: {values['time']!r} is not an ISO-8601 date-time{EPOCH_HINT}")
    mapped = values.get("properties") or {}
    if not isinstance(mapped, Mapping):
        return ("properties", f"properties: must be an object, got {type(mapped).__name__}")
    properties = {k: v for k, v in mapped.items() if k not in VALUE_KEYS}
    if len(properties) > MAX_PROPERTIES:
        return ("properties", f"properties: at most {MAX_PROPERTIES}, got {len(properties)}")
    # A string over 100 KB would make Klaviyo refuse it after a request (within a bulk
    # job, after the others were sent); found here it is a reject naming the property.
    problems = check_klaviyo_properties(properties)
    if problems:
        return (problems[0].field, f"{problems[0].field}: {problems[0].reason}")
    return {
        "metric": name,
        "properties": properties,
        "time": iso_time(when),
        "value": value,
        "value_currency": currency,
        "unique_id": str(values.get("unique_id") or message.message_id),
        # The event's own time decides: old orders loaded today must not start flows.
        "backfill": ctx.is_backfill(when or message.timestamp),
        "profile": profile,
        "profile_id": known_id,
        "notes": notes,
    }


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """One record for one track call (or a mapping reject naming the field)."""
    resolved = resolve_message(specs_for(NAME, DEFAULTS, ctx), message)
    fields = event_fields(message, customer, ctx, resolved.values)
    if isinstance(fields, tuple):
        return [reject(message, ctx, fields[0], fields[1], message.message_id)]
    return [
        Record(
            key=fields["unique_id"],
            action=NAME,
            fields=fields,
            source_ref=message.source_ref,
            event_time=message.timestamp,
            fallbacks=tuple(resolved.fallbacks_used),
        )
    ]


def _metric(name: str) -> Body:
    return {"data": {"type": "metric", "attributes": {"name": name}}}


def _profile(fields: Mapping[str, Any]) -> Body:
    data: Body = {"type": "profile", "attributes": dict(fields["profile"])}
    if fields.get("profile_id"):
        data["id"] = fields["profile_id"]
    return {"data": data}


def event_attributes(fields: Mapping[str, Any]) -> Body:
    """Event attributes shared by the single and bulk bodies (blank values left out)."""
    attributes: Body = {"properties": dict(fields["properties"])}
    for name in ("time", "value", "value_currency", "unique_id"):
        if fields.get(name) is not None:
            attributes[name] = fields[name]
    if fields.get("backfill"):
        attributes["backfill"] = True
    attributes["metric"] = _metric(fields["metric"])
    return attributes


def build_request(record: Record) -> ApiRequest:
    """`POST /api/events` for one event."""
    attributes = event_attributes(record.fields)
    attributes["profile"] = _profile(record.fields)
    return ApiRequest("create_event", {"data": {"type": "event", "attributes": attributes}})


def profile_key(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """Events of the same profile share one bulk entry."""
    return (fields.get("profile_id"), tuple(sorted(dict(fields["profile"]).items())))


def groups(records: Sequence[Record]) -> list[list[int]]:
    """Record indexes per bulk entry, in first-seen order."""
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for index, record in enumerate(records):
        by_key.setdefault(profile_key(record.fields), []).append(index)
    return list(by_key.values())


def build_batch(records: Sequence[Record]) -> ApiRequest:
    """`POST /api/event-bulk-create-jobs` for up to 1,000 events, grouped per profile."""
    entries = []
    for members in groups(records):
        first = records[members[0]].fields
        events = [
            {"type": "event", "attributes": event_attributes(records[i].fields)} for i in members
        ]
        entries.append(
            {
                "type": "event-bulk-create",
                "attributes": {"profile": _profile(first), "events": {"data": events}},
            }
        )
    body = {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": entries}},
        }
    }
    return ApiRequest("bulk_create_events", body)


def size_of(record: Record) -> int:
    """Approximate bytes of one event in a bulk body."""
    return json_size(record.fields) + 120


def rows_from_error(body: Any, records: Sequence[Record]) -> list[RowError]:
    """Rows a 4xx names: a bulk pointer → its event (or every event of its profile).

    For a single-event request every error belongs to row 0.
    """
    if len(records) == 1:
        entries = error_entries(body)
        return [RowError(0, e.detail, field_of(e.pointer)) for e in entries[:1]]
    layout = groups(records)
    out: list[RowError] = []
    for row in rows_from_pointers(body, BULK_COLLECTION, len(layout)):
        members = layout[row.index]
        field = row.field or ""
        head, _, tail = field.partition("events.data.")
        if tail and tail.split(".")[0].isdigit():
            position, _, rest = tail.partition(".")
            if int(position) < len(members):
                out.append(
                    RowError(
                        members[int(position)], row.detail, rest.removeprefix("attributes.") or None
                    )
                )
                continue
        out.extend(RowError(i, row.detail, head.rstrip(".") or None) for i in members)
    return out


FIELDS = TrackEventFields
"""The declared fields of this action's records."""
