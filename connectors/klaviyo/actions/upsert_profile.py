"""Upsert Profile: a Segment `identify` → a Klaviyo profile create-or-update.

Single: `POST /api/profile-import` (a 409 `duplicate_profile` is resolved by PATCHing
the profile Klaviyo names, never by creating another). Bulk: `POST
/api/profile-bulk-import-jobs` (≤ 10,000 profiles, ≤ 5 MB), then the job is polled and
its import-errors become rejected outcomes.

A null never overwrites a known value: blank fields are left out (Klaviyo leaves
omitted fields unchanged) unless the property is listed in `unset_on_null`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions.base import (
    NO_IDENTIFIER,
    ActionFields,
    ApiRequest,
    BatchLimits,
    Body,
    MapContext,
    MapResult,
    RowError,
    identifiers,
    json_size,
    missing_identifier,
    profile_id,
    profile_rows_from_error,
    reject,
    resolve_message,
    rows_from_pointers,
    specs_for,
)
from connectors.klaviyo.defaults import PROFILE_DEFAULTS, PROFILE_TRAIT_EXCLUDES
from connectors.klaviyo.errors import error_entries, field_of
from mapping.fields import FieldSpec, is_blank
from mapping.paths import get_path
from mapping.types import Message

NAME = "upsert_profile"
DEFAULTS: Mapping[str, FieldSpec] = PROFILE_DEFAULTS
LIMITS = BatchLimits(max_items=10_000, max_bytes=5_000_000)
MAX_PROFILE_BYTES = 100_000
BULK_COLLECTION = "/data/attributes/profiles/data"
STANDARD = ("first_name", "last_name", "organization", "title", "image", "locale")
NUMERIC_LOCATION = frozenset({"location.latitude", "location.longitude"})
"""Location attributes Klaviyo takes as a number or text; every other one is text."""


class ProfileFields(ActionFields):
    """The fields of one profile upsert."""

    attributes: dict[str, Any] = Field(
        description="email, phone_number, external_id, names, location{}, properties{}."
    )
    unset: list[str] = Field(default_factory=list, description="Properties to clear.")
    profile_id: str | None = Field(default=None, description="Known Klaviyo profile id.")


def subscribes(message: Message, ctx: MapContext) -> bool:
    """Every `identify` call."""
    return message.type == "identify"


def _properties(values: Mapping[str, Any]) -> dict[str, Any]:
    traits = values.get("properties")
    if not isinstance(traits, Mapping):
        return {}
    return {k: v for k, v in traits.items() if k not in PROFILE_TRAIT_EXCLUDES and not is_blank(v)}


def _unset(message: Message, ctx: MapContext) -> list[str]:
    traits = message.raw.get("traits") or {}
    return [
        k
        for k in ctx.settings.unset_on_null
        if isinstance(traits, Mapping) and k in traits and traits[k] is None
    ]


def _text(name: str, value: Any, notes: list[str]) -> Any:
    """A standard attribute as Klaviyo types it: text (a number is written as text;
    latitude and longitude may stay numbers), else None with a note saying why."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name in NUMERIC_LOCATION:
            return value
        return str(int(value)) if float(value).is_integer() else str(value)
    notes.append(f"{name.removeprefix('location.')} dropped: {value!r} is not text")
    return None


def profile_attributes(
    values: Mapping[str, Any], ids: Mapping[str, str], notes: list[str]
) -> dict[str, Any]:
    """Profile attributes from resolved values (blank values left out, notes appended)."""
    attributes: dict[str, Any] = dict(ids)
    for name in STANDARD:
        if not is_blank(values.get(name)):
            text = _text(name, values[name], notes)
            attributes.update({name: text} if text is not None else {})
    location = {}
    for name, value in values.items():
        if name.startswith("location.") and not is_blank(value):
            text = _text(name, value, notes)
            location.update({name.removeprefix("location."): text} if text is not None else {})
    if location:
        attributes["location"] = location
    properties = _properties(values)
    if properties:
        attributes["properties"] = properties
    return attributes


def _one_line_address(message: Message) -> str | None:
    """Segment's `address` is an object; sent as one line of text, it is address line 1."""
    for where in ("traits", "context.traits"):
        value = get_path(message.raw, f"{where}.address")
        if isinstance(value, str) and not is_blank(value):
            return value.strip()
    return None


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """One profile record per identify call."""
    key = f"profile:{message.message_id}"
    resolved = resolve_message(specs_for(NAME, DEFAULTS, ctx), message)
    values = dict(resolved.values)
    if is_blank(values.get("location.address1")):
        values["location.address1"] = _one_line_address(message)
    ids, notes = identifiers(values, customer, ctx, anonymous=False)
    known = profile_id(customer)
    if not ids and not known:
        return [
            reject(
                message,
                ctx,
                "profile",
                missing_identifier(notes, NO_IDENTIFIER.replace(" or anonymous_id", "")),
                key,
            )
        ]
    attributes = profile_attributes(values, ids, notes)
    unset = _unset(message, ctx)
    # `patch_properties.unset` removes custom properties only: a standard attribute
    # is cleared by sending it as null (unless another path gave it a value).
    for name in [n for n in unset if n in STANDARD]:
        unset.remove(name)
        attributes.setdefault(name, None)
    fields = {
        "attributes": attributes,
        "unset": unset,
        "profile_id": known,
        "notes": notes,
    }
    if json_size(fields["attributes"]) > MAX_PROFILE_BYTES:
        return [
            reject(message, ctx, "traits", "profile is larger than Klaviyo's 100 KB limit", key)
        ]
    return [
        Record(
            key=key,
            action=NAME,
            fields=fields,
            source_ref=message.source_ref,
            event_time=message.timestamp,
            fallbacks=tuple(resolved.fallbacks_used),
        )
    ]


def resource(fields: Mapping[str, Any], *, with_id: str | None = None) -> Body:
    """The profile resource object shared by profile-import, PATCH and bulk import."""
    data: Body = {"type": "profile"}
    ident = with_id or fields.get("profile_id")
    if ident:
        data["id"] = ident
    data["attributes"] = dict(fields["attributes"])
    if fields.get("unset"):
        data["meta"] = {"patch_properties": {"unset": list(fields["unset"])}}
    return data


def build_request(record: Record) -> ApiRequest:
    """`POST /api/profile-import` for one profile."""
    return ApiRequest("create_or_update_profile", {"data": resource(record.fields)})


IDENTIFIER_ATTRIBUTES = ("email", "phone_number", "external_id")


def build_update(record: Record, known_id: str, *, identifiers: bool = True) -> ApiRequest:
    """`PATCH /api/profiles/{id}` for the profile a 409 named (optionally without identifiers)."""
    data = resource(record.fields, with_id=known_id)
    if not identifiers:
        data["attributes"] = {
            k: v for k, v in data["attributes"].items() if k not in IDENTIFIER_ATTRIBUTES
        }
    return ApiRequest("update_profile", {"data": data}, {"id": known_id})


def build_batch(records: Sequence[Record], list_id: str | None = None) -> ApiRequest:
    """`POST /api/profile-bulk-import-jobs` for up to 10,000 profiles (optionally into a list)."""
    body: Body = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": [resource(r.fields) for r in records]}},
        }
    }
    if list_id:
        body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return ApiRequest("bulk_import_profiles", body)


def size_of(record: Record) -> int:
    """Approximate bytes of one profile in a bulk body."""
    return json_size(record.fields["attributes"]) + 60


def duplicate_profile_id(body: Any) -> str | None:
    """`meta.duplicate_profile_id` of a 409 `duplicate_profile` body."""
    for entry in error_entries(body):
        found = entry.meta.get("duplicate_profile_id")
        if entry.code == "duplicate_profile" or found:
            return str(found) if found else None
    return None


rows_from_error = profile_rows_from_error
"""Rows a 4xx names (`/data/attributes/profiles/data/<i>/...`)."""


def rows_from_import_errors(
    errors: Sequence[Mapping[str, Any]], records: Sequence[Record]
) -> list[RowError]:
    """Rows of a finished bulk job's import-errors (by pointer, else by original payload)."""
    out: list[RowError] = []
    for error in errors:
        attributes = error.get("attributes") or {}
        detail = str(attributes.get("detail") or attributes.get("title") or "import error")
        pointer = (attributes.get("source") or {}).get("pointer")
        found = (
            rows_from_pointers(
                {"errors": [{"detail": detail, "source": {"pointer": pointer}}]},
                BULK_COLLECTION,
                len(records),
            )
            if pointer
            else []
        )
        if found:
            out.extend(found)
            continue
        index = _match_payload(attributes.get("original_payload") or {}, records)
        if index is not None:
            out.append(RowError(index, detail, field_of(pointer)))
    return out


def _match_payload(payload: Mapping[str, Any], records: Sequence[Record]) -> int | None:
    sent = payload.get("attributes", payload) if isinstance(payload, Mapping) else {}
    for key in ("email", "phone_number", "external_id"):
        value = sent.get(key) if isinstance(sent, Mapping) else None
        if value is None:
            continue
        for index, record in enumerate(records):
            if record.fields["attributes"].get(key) == value:
                return index
    return None


FIELDS = ProfileFields
"""The declared fields of this action's records."""
