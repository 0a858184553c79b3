"""What every Klaviyo action shares: mapping context, requests, row errors, identity."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Customer, Record
from connectors.klaviyo.defaults import METRIC_NAMES
from connectors.klaviyo.errors import error_entries, field_of, split_pointer
from connectors.klaviyo.settings import KlaviyoSettings
from mapping.fields import FieldSpec, Resolved, resolve
from mapping.types import Message, RejectedRow

Body = dict[str, Any]
MapResult = list[Record | RejectedRow]
MAX_EXTERNAL_ID = 255
NO_IDENTIFIER = "one of email, phone_number, external_id or anonymous_id is required"


class ActionFields(BaseModel):
    """Base of every action's fields model: the declaration matches the records exactly."""

    model_config = ConfigDict(extra="forbid")

    notes: list[str] = Field(
        default_factory=list, description="Mapping notes, e.g. a dropped phone number."
    )


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How many items (and bytes) one request of an action may carry."""

    max_items: int
    max_bytes: int = 5_000_000


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One Klaviyo call, as data: the operation, its path parameters and body."""

    operation_id: str
    body: Body
    path_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row of a request: its index in the batch, Klaviyo's reason, the field."""

    index: int
    detail: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class MapContext:
    """Everything `map` needs besides the message: config, clock, destination name."""

    settings: KlaviyoSettings
    now: datetime
    destination: str
    renames: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: KlaviyoSettings, now: datetime, destination: str) -> MapContext:
        """A context with the rename table (defaults + config) computed once."""
        table = {k.lower(): v for k, v in {**METRIC_NAMES, **settings.metric_names}.items()}
        return cls(settings, now, destination, table)

    def metric_name(self, event: str) -> str:
        """The Klaviyo metric for a Segment event name (renames are case-insensitive)."""
        renames = self.renames or MapContext.build(self.settings, self.now, "").renames
        return renames.get(event.strip().lower(), event)

    def is_backfill(self, event_time: datetime) -> bool:
        """True for events older than the freshness window: recorded without firing flows."""
        return event_time < self.now - timedelta(days=self.settings.freshness_days)


def specs_for(
    action: str, defaults: Mapping[str, FieldSpec], ctx: MapContext
) -> dict[str, FieldSpec]:
    """An action's field specs: its defaults with the TOML overrides on top."""
    return {**defaults, **ctx.settings.mapping.get(action, {})}


def resolve_message(specs: Mapping[str, FieldSpec], message: Message) -> Resolved:
    """Resolve field specs against the message as read (paths such as `traits.email`)."""
    return resolve(specs, message.raw)


def as_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO-8601 text or a datetime, else None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC)


def iso_time(value: Any) -> str | None:
    """ISO-8601 UTC with milliseconds (`2024-07-22T20:08:49.790Z`), or None."""
    aware = as_datetime(value)
    if aware is None:
        return None
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def e164(raw: Any, region: str | None) -> tuple[str | None, str | None]:
    """(phone in E.164, None) or (None, why it was dropped)."""
    text = str(raw).strip()
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None, f"phone_number dropped: {text!r} is not a phone number in E.164 form"
    if not phonenumbers.is_valid_number(number):
        return None, f"phone_number dropped: {text!r} is not a valid phone number"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def identifiers(
    values: Mapping[str, Any],
    customer: Customer | None,
    ctx: MapContext,
    *,
    anonymous: bool,
) -> tuple[dict[str, str], list[str]]:
    """Profile identifiers for Klaviyo and notes about dropped ones.

    Identity resolution decided the customer's identifiers, so they win over the
    message's. `anonymous_id` is only accepted on event profiles.
    """
    chosen: dict[str, Any] = {
        "email": values.get("email"),
        "phone_number": values.get("phone_number"),
        "external_id": values.get("external_id"),
    }
    if anonymous:
        chosen["anonymous_id"] = values.get("anonymous_id")
    if customer is not None:
        for ours, theirs in (
            ("email", "email"),
            ("phone_number", "phone"),
            ("external_id", "user_id"),
        ):
            chosen[ours] = customer.first(theirs) or chosen[ours]
        if anonymous:
            chosen["anonymous_id"] = customer.first("anonymous_id") or chosen["anonymous_id"]
    notes: list[str] = []
    if chosen["phone_number"] is not None:
        region = values.get("phone_region") or ctx.settings.phone_default_region
        chosen["phone_number"], note = e164(
            chosen["phone_number"],
            region
            if isinstance(region, str) and len(region) == 2
            else ctx.settings.phone_default_region,
        )
        notes.extend([note] if note else [])
    if isinstance(chosen.get("email"), str):
        chosen["email"] = chosen["email"].strip()
    external = chosen.get("external_id")
    if external is not None and len(str(external)) > MAX_EXTERNAL_ID:
        notes.append(f"external_id dropped: longer than {MAX_EXTERNAL_ID} characters")
        chosen["external_id"] = None
    return {k: str(v) for k, v in chosen.items() if v not in (None, "")}, notes


def profile_id(customer: Customer | None) -> str | None:
    """The Klaviyo profile id identity resolution learned earlier, if any."""
    return customer.first("klaviyo_profile_id") if customer else None


def reject(
    message: Message, ctx: MapContext, field_name: str | None, reason: str, key: str | None = None
) -> RejectedRow:
    """A mapping-stage reject naming the record and the field."""
    return RejectedRow(
        source_ref=message.source_ref,
        field=field_name,
        reason=reason,
        stage="mapping",
        payload=dict(message.raw),
        destination=ctx.destination,
        key=key,
    )


def missing_identifier(notes: Sequence[str], base: str = NO_IDENTIFIER) -> str:
    """The reject reason for a profile with no usable identifier, with why some were dropped."""
    return f"{base} ({'; '.join(notes)})" if notes else base


def json_size(value: Any) -> int:
    """Bytes of a value once serialised."""
    return len(orjson.dumps(value))


def chunk(
    records: Sequence[Record], limits: BatchLimits, size_of: Callable[[Record], int]
) -> list[list[Record]]:
    """Split records into requests of at most `max_items` items and ~`max_bytes` bytes."""
    budget = int(limits.max_bytes * 0.95)  # room for the JSON:API envelope
    out: list[list[Record]] = []
    current: list[Record] = []
    used = 0
    for record in records:
        size = size_of(record)
        if current and (len(current) >= limits.max_items or used + size > budget):
            out.append(current)
            current, used = [], 0
        current.append(record)
        used += size
    if current:
        out.append(current)
    return out


def rows_from_pointers(body: Any, collection: str, count: int) -> list[RowError]:
    """Row errors of a bulk body whose errors point into `collection/<index>`."""
    out: list[RowError] = []
    for entry in error_entries(body):
        found = split_pointer(entry.pointer, collection) if entry.pointer else None
        if found is not None and found[0] < count:
            out.append(RowError(index=found[0], detail=entry.detail, field=found[1]))
    return out


PROFILES_COLLECTION = "/data/attributes/profiles/data"
"""Where profile-bulk bodies (import, subscribe, unsubscribe jobs) keep their rows."""


def profile_rows_from_error(body: Any, records: Sequence[Record]) -> list[RowError]:
    """Rows a 4xx names in a profiles body: a lone record owns the first error; in a bulk
    body each error's pointer (`/data/attributes/profiles/data/<i>/...`) names its row."""
    if len(records) == 1:
        return [RowError(0, e.detail, field_of(e.pointer)) for e in error_entries(body)[:1]]
    return rows_from_pointers(body, PROFILES_COLLECTION, len(records))


def notes_of(record: Record) -> str | None:
    """Mapping notes carried by a record (e.g. a dropped phone), as one reason string."""
    notes = record.fields.get("notes") or []
    return "; ".join(str(n) for n in notes) or None


def event_time_of(message: Message) -> datetime:
    """The message's event time (aware UTC)."""
    return message.timestamp


def as_str(value: Any) -> str | None:
    """A non-blank string form of a scalar, else None."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None
