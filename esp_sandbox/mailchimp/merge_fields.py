"""Merge fields (audience fields): the defaults, creation, and per-type value validation.

Type rules follow Mailchimp's merge-field docs and the peers' behaviour: numbers
must be numeric, dates follow `options.date_format`, birthdays are `MM/DD` (or
`DD/MM`), an address is an object with addr1, city, state and zip, phones follow
`options.phone_format`. Message wording is the sandbox's own where Mailchimp's
is not documented (see the README's sandbox section).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import FieldError
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply
from esp_sandbox.mailchimp.store import Audience, MailchimpStore, MergeField

TYPES = (
    "text", "number", "address", "phone", "date", "url", "imageurl",
    "radio", "dropdown", "birthday", "zip",
)  # fmt: skip
_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
_DATE_FORMATS = {
    "MM/DD/YYYY": "%m/%d/%Y",
    "DD/MM/YYYY": "%d/%m/%Y",
    "YYYY-MM-DD": "%Y-%m-%d",
    "MM/DD": "%m/%d",
    "DD/MM": "%d/%m",
}
_US_PHONE = re.compile(r"^\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}$")
_INTL_PHONE = re.compile(r"^\+?[0-9 ().-]{6,25}$")
_ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
_ADDRESS_KEYS = {"addr1", "addr2", "city", "state", "zip", "country"}


def seed_fields(audience: Audience) -> None:
    """Give a new audience the fields Mailchimp creates by default."""
    for tag, name, kind, options in (
        ("FNAME", "First Name", "text", {"size": 25}),
        ("LNAME", "Last Name", "text", {"size": 25}),
        ("ADDRESS", "Address", "address", {"default_country": 164}),
        ("PHONE", "Phone Number", "phone", {"phone_format": "none"}),
        ("BIRTHDAY", "Birthday", "birthday", {"date_format": "MM/DD"}),
    ):
        add_field(audience, tag, name, kind, options=options)


def add_field(
    audience: Audience,
    tag: str,
    name: str,
    kind: str,
    *,
    required: bool = False,
    options: dict[str, Any] | None = None,
    default_value: str = "",
) -> MergeField:
    """Append a merge field to an audience (no validation; see `create_field`)."""
    merge_id = audience.next_merge_id
    audience.next_merge_id += 1
    field = MergeField(
        merge_id=merge_id,
        tag=tag,
        name=name,
        type=kind,
        required=required,
        options=dict(options or {}),
        default_value=default_value,
        display_order=merge_id + 1,
    )
    audience.merge_fields[tag] = field
    return field


def create_field(audience: Audience, body: dict[str, Any]) -> MergeField:
    """Validate a `POST /lists/{id}/merge-fields` body and add the field.

    Raises:
        MailchimpError: 400 naming the offending field.
    """
    name, kind = body.get("name"), body.get("type")
    missing = [FieldError(k, "This value should not be blank.") for k in ("name", "type")
               if not body.get(k)]  # fmt: skip
    if missing:
        raise errors.invalid(errors.VALIDATION_DETAIL, *missing)
    if not isinstance(name, str) or not isinstance(kind, str):
        raise errors.invalid_field(
            "name" if not isinstance(name, str) else "type", "Must be a string"
        )
    if kind not in TYPES:
        raise errors.invalid_field(
            "type", f"Data presented is not one of the accepted values: {', '.join(TYPES)}."
        )
    tag = str(body.get("tag") or f"MMERGE{audience.next_merge_id}").upper()
    if not _TAG.match(tag):
        raise errors.invalid_field("tag", "Merge tags are 1-10 letters, digits or underscores.")
    if tag in audience.merge_fields:
        raise errors.invalid(f'A Merge Field with the tag "{tag}" already exists for this list.')
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise errors.schema_mismatch("options", "object", options)
    if kind in ("radio", "dropdown") and not options.get("choices"):
        raise errors.invalid_field("options.choices", f"A {kind} field needs choices.")
    if kind == "date":
        options.setdefault("date_format", "MM/DD/YYYY")
    if kind == "birthday":
        options.setdefault("date_format", "MM/DD")
    fmt = options.get("date_format")
    if kind in ("date", "birthday") and fmt not in _DATE_FORMATS:
        raise errors.invalid_field("options.date_format", f"Unknown date format {fmt!r}.")
    return add_field(
        audience,
        tag,
        name,
        kind,
        required=bool(body.get("required", False)),
        options=options,
        default_value=str(body.get("default_value") or ""),
    )


def check_value(field: MergeField, value: Any) -> tuple[Any, str | None]:
    """Validate one merge value against its field.

    Returns:
        (normalised value, None) when valid, else (value, error message).
    """
    if value == "":
        return "", None
    checker = _CHECKERS.get(field.type, _check_text)
    return checker(field, value)


def _check_text(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, (dict, list)):
        return value, f"Schema describes string, {errors.type_name(value)} found instead"
    return str(value), None


def _check_number(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, (int, float)):
        return value, None
    try:
        number = float(str(value))
    except ValueError:
        return value, "Please enter a number"
    return (int(number) if number.is_integer() else number), None


def _check_date(field: MergeField, value: Any) -> tuple[Any, str | None]:
    fmt = str(field.options.get("date_format") or "MM/DD/YYYY")
    if not isinstance(value, str):
        return value, f"Please enter the date in the format {fmt}"
    formats = [fmt] if field.type == "birthday" else [fmt, "YYYY-MM-DD"]
    for name in formats:
        try:
            datetime.strptime(value, _DATE_FORMATS[name])
        except (ValueError, KeyError):
            continue
        return value, None
    if field.type == "birthday" and _leap_day(value, fmt):
        return value, None
    return value, f"Please enter the date in the format {fmt}"


def _leap_day(value: str, fmt: str) -> bool:
    # strptime without a year rejects 02/29; Mailchimp birthdays accept it.
    return value == ("02/29" if fmt == "MM/DD" else "29/02")


def _check_address(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return value, "Please enter a complete address"
    unknown = set(value) - _ADDRESS_KEYS
    missing = [k for k in _ADDRESS_REQUIRED if not str(value.get(k) or "").strip()]
    if missing or unknown:
        return value, "Please enter a complete address"
    address = {k: str(value.get(k) or "") for k in sorted(_ADDRESS_KEYS)}
    address["country"] = address["country"] or "US"
    return address, None


def _check_phone(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return value, "Please enter a valid phone number"
    us = field.options.get("phone_format") == "US"
    pattern = _US_PHONE if us else _INTL_PHONE
    if not pattern.match(value.strip()) or sum(c.isdigit() for c in value) < 6:
        return value, "Please enter a valid phone number" + (" (###-###-####)" if us else "")
    return value.strip(), None


def _check_url(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/$.?#].[^\s]*$", value):
        return value, "Please enter a valid URL"
    return value, None


def _check_choice(field: MergeField, value: Any) -> tuple[Any, str | None]:
    choices = [str(c) for c in field.options.get("choices") or []]
    if str(value) not in choices:
        return value, f"Please choose one of: {', '.join(choices)}"
    return str(value), None


def _check_zip(field: MergeField, value: Any) -> tuple[Any, str | None]:
    if not re.match(r"^\d{5}(-\d{4})?$", str(value)):
        return value, "Please enter a valid zip code"
    return str(value), None


_CHECKERS = {
    "number": _check_number,
    "date": _check_date,
    "birthday": _check_date,
    "address": _check_address,
    "phone": _check_phone,
    "url": _check_url,
    "imageurl": _check_url,
    "radio": _check_choice,
    "dropdown": _check_choice,
    "zip": _check_zip,
}


def install(table: OperationTable, store: MailchimpStore, audience_of: Any) -> None:
    """Register the merge-field operations."""

    def list_fields(call: Call) -> Reply:
        audience: Audience = audience_of(call)
        fields = list(audience.merge_fields.values())
        if call.query.get("type"):
            fields = [f for f in fields if f.type == call.query["type"]]
        if call.query.get("required"):
            fields = [f for f in fields if f.required == call.flag("required")]
        page = call.page(fields)
        return Reply(
            200,
            {
                "merge_fields": [f.to_json(audience.id) for f in page],
                "list_id": audience.id,
                "total_items": len(fields),
                "_links": [],
            },
        )

    def get_field(call: Call) -> Reply:
        audience: Audience = audience_of(call)
        for field in audience.merge_fields.values():
            if str(field.merge_id) == call.path_params["merge_id"]:
                return Reply(200, field.to_json(audience.id))
        raise errors.not_found()

    def post_field(call: Call) -> Reply:
        audience: Audience = audience_of(call)
        return Reply(200, create_field(audience, call.object_body()).to_json(audience.id))

    table.add("GET", "/lists/{list_id}/merge-fields", list_fields)
    table.add("POST", "/lists/{list_id}/merge-fields", post_field)
    table.add("GET", "/lists/{list_id}/merge-fields/{merge_id}", get_field)
