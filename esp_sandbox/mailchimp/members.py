"""List members: the upsert rules shared by PUT, PATCH, POST, batch subscribe and `/batches`.

Rules (shared/notes/esp-api-contracts.md §2.2, §2.7):
- members are keyed by md5(lowercase(email)); a PUT whose path hash is not the
  body's address hash is rejected, a PATCH with another address changes the
  member's address (unless another live member has it);
- a new member needs `status_if_new` or `status`; an existing member's status
  changes only through an explicit `status`;
- unsubscribed or cleaned members cannot be made subscribed/pending again
  ("Member In Compliance State"); permanently deleted addresses cannot be
  re-imported at all ("Forgotten Email Not Subscribed");
- merge values are validated by field type, and required fields must have a
  value unless `skip_merge_validation=true`. Tags the list does not define are
  ignored, as Mailchimp ignores them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import FieldError
from esp_sandbox.mailchimp.merge_fields import check_value
from esp_sandbox.mailchimp.store import Audience, MailchimpStore, Member, subscriber_hash

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
COMPLIANCE_STATES = ("unsubscribed", "cleaned")
# Mailchimp's help ("International characters in Mailchimp"): UTF-8 is refused in an
# address's prefix (dirección@domain.com) but allowed in its domain, an IDN
# (test@ñoñó1234.com): the local part is ASCII, a domain label any letter or digit.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[^\W_]|-)+(\.(?:[^\W_]|-)+)+$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
EMAIL_DETAIL = "Please provide a valid email address."


def check_email(value: Any) -> str:
    """The address, or 400 Invalid Resource in the shape Mailchimp uses for each failure."""
    if value is None:
        raise errors.invalid(
            errors.VALIDATION_DETAIL,
            FieldError("", "Required fields were not provided: email_address"),
            FieldError("email_address", "Schema describes string, NULL found instead"),
        )
    if not isinstance(value, str):
        raise errors.schema_mismatch("email_address", "string", value)
    if not value.strip():
        raise errors.invalid_field("email_address", "This value should not be blank.")
    if len(value) > 254 or not _EMAIL.match(value.strip()):
        raise errors.invalid(EMAIL_DETAIL, FieldError("email_address", EMAIL_DETAIL))
    return value.strip()


def path_hash(raw: str) -> str:
    """The member key for a path segment: an md5, an email address, or anything else."""
    return subscriber_hash(raw) if "@" in raw else raw.lower()


def check_hash_matches(raw: str, email: str) -> None:
    """400 when the path's subscriber hash is not the md5 of the body's address."""
    if path_hash(raw) != subscriber_hash(email):
        raise errors.invalid_field(
            "email_address",
            f"The subscriber hash {raw} in the URL is not the MD5 hash of the lowercase "
            f"email address {email}.",
        )


def check_status(value: Any, name: str, allowed: tuple[str, ...] = STATUSES) -> str:
    """A valid status string, or 400 naming the field."""
    if value not in allowed:
        raise errors.invalid_field(
            name, f"Data presented is not one of the accepted values: {', '.join(allowed)}."
        )
    return str(value)


def merged_values(
    audience: Audience, values: Any, current: dict[str, Any], skip_required: bool
) -> dict[str, Any]:
    """The member's merge values after applying `values`, validated.

    Raises:
        MailchimpError: 400 "Your merge fields were invalid." naming each bad tag.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise errors.schema_mismatch("merge_fields", "object", values)
    # Schema level first: a merge value is a string, a number or an object (address).
    untyped = [
        FieldError(
            f"merge_fields.{tag}", "Data did not match any of the schemas described in anyOf."
        )
        for tag, value in values.items()
        if value is None or isinstance(value, (bool, list))
    ]
    if untyped:
        raise errors.invalid(errors.VALIDATION_DETAIL, *untyped)
    result = dict(current)
    problems: list[FieldError] = []
    for tag, value in values.items():
        field = audience.merge_fields.get(str(tag).upper())
        if field is None:
            continue
        normalised, message = check_value(field, value)
        if message:
            problems.append(FieldError(field.tag, message))
        else:
            result[field.tag] = normalised
    if not skip_required:
        for field in audience.merge_fields.values():
            if field.required and result.get(field.tag) in (None, ""):
                problems.append(FieldError(field.tag, "Please enter a value"))
    if problems:
        raise errors.invalid("Your merge fields were invalid.", *problems)
    return result


def _apply_profile(member: Member, body: dict[str, Any]) -> None:
    """Copy the simple member attributes, type-checked."""
    if "email_type" in body:
        member.email_type = check_status(body["email_type"], "email_type", ("html", "text"))
    for name in ("language", "ip_signup", "timestamp_signup", "ip_opt", "timestamp_opt"):
        if name in body:
            if not isinstance(body[name], str):
                raise errors.schema_mismatch(name, "string", body[name])
            setattr(member, name, body[name])
    if "vip" in body:
        if not isinstance(body["vip"], bool):
            raise errors.schema_mismatch("vip", "boolean", body["vip"])
        member.vip = body["vip"]
    if "interests" in body:
        interests = body["interests"]
        if not isinstance(interests, dict) or not all(
            isinstance(v, bool) for v in interests.values()
        ):
            raise errors.schema_mismatch("interests", "object", interests)
        member.interests.update(interests)
    if "location" in body:
        location = body["location"]
        if not isinstance(location, dict):
            raise errors.schema_mismatch("location", "object", location)
        member.location = {
            k: float(v) for k, v in location.items() if k in ("latitude", "longitude")
        }


def upsert(
    store: MailchimpStore,
    audience: Audience,
    email: str,
    body: dict[str, Any],
    *,
    status_if_new: str | None,
    status: str | None,
    skip_required: bool = False,
) -> tuple[Member, bool]:
    """Create or update a member under Mailchimp's status and compliance rules.

    Returns:
        The member and whether it was created.

    Raises:
        MailchimpError: 400 for a forgotten address, a compliance state, a
            missing status for a new member, or invalid data.
    """
    key = subscriber_hash(email)
    if key in audience.forgotten:
        raise errors.forgotten(email)
    existing = audience.members.get(key)
    if existing is None or existing.status == "archived":
        chosen = status or status_if_new
        if chosen is None:
            raise errors.invalid_field(
                "status_if_new", "Required fields were not provided: status_if_new"
            )
        values = merged_values(audience, body.get("merge_fields"), {}, skip_required)
        member = _new_member(store, email, chosen)
        if existing is not None:  # an archived contact comes back with its history
            member.tags, member.events = existing.tags, existing.events
            member.status_history = [*existing.status_history, chosen]
        _apply_profile(member, body)
        member.merge_fields = values
        audience.members[key] = member
        return member, True
    if existing.status in COMPLIANCE_STATES and status in ("subscribed", "pending"):
        raise errors.compliance_state(existing.email)
    values = merged_values(audience, body.get("merge_fields"), existing.merge_fields, skip_required)
    staged = replace(existing, interests=dict(existing.interests), location=dict(existing.location))
    _apply_profile(staged, body)
    staged.merge_fields = values
    if status is not None and status != existing.status:
        _set_status(store, staged, status)
    staged.last_changed = store.now()
    audience.members[key] = staged
    return staged, False


def check_email_change(audience: Audience, member: Member, email: str) -> None:
    """400 when a member cannot take `email`: it is forgotten, or another live member's.

    `PATCH /lists/{id}/members/{hash}` ("Update list member") takes `email_address`
    in its body (spec `Add_List_Members_3`): that is how an address is changed.
    """
    key = subscriber_hash(email)
    if key == subscriber_hash(member.email):
        return
    if key in audience.forgotten:
        raise errors.forgotten(email)
    other = audience.members.get(key)
    if other is not None and other.status != "archived":
        raise errors.member_exists(email)


def change_email(audience: Audience, member: Member, email: str) -> Member:
    """Re-key `member` under `email`; status, fields, tags and events stay with it."""
    old, new = subscriber_hash(member.email), subscriber_hash(email)
    if old == new:
        return member
    moved = replace(member, email=email)
    del audience.members[old]
    audience.members[new] = moved
    return moved


def _new_member(store: MailchimpStore, email: str, status: str) -> Member:
    now = store.now()
    member = Member(
        email=email,
        status=status,
        contact_id=store.new_hex(32),
        unique_email_id=store.new_hex(10),
        web_id=store.next_web_id(),
        created_at=now,
        last_changed=now,
        status_history=[status],
    )
    if status == "subscribed":
        member.timestamp_opt = now
    return member


def _set_status(store: MailchimpStore, member: Member, status: str) -> None:
    member.status = status
    member.status_history = [*member.status_history, status]
    if status == "subscribed":
        member.timestamp_opt = store.now()


def member_json(audience: Audience, member: Member) -> dict[str, Any]:
    """A member as `GET /lists/{id}/members/{hash}` renders it."""
    merges = {tag: member.merge_fields.get(tag, "") for tag in audience.merge_fields}
    return {
        "id": subscriber_hash(member.email),
        "email_address": member.email,
        "unique_email_id": member.unique_email_id,
        "contact_id": member.contact_id,
        "full_name": " ".join(
            str(merges.get(t) or "") for t in ("FNAME", "LNAME") if merges.get(t)
        ),
        "web_id": member.web_id,
        "email_type": member.email_type,
        "status": member.status,
        "consents_to_one_to_one_messaging": True,
        "merge_fields": merges,
        "interests": dict(member.interests),
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": member.ip_signup,
        "timestamp_signup": member.timestamp_signup,
        "ip_opt": member.ip_opt,
        "timestamp_opt": member.timestamp_opt,
        "member_rating": 2,
        "last_changed": member.last_changed,
        "language": member.language,
        "vip": member.vip,
        "email_client": "",
        "location": {
            "latitude": member.location.get("latitude", 0),
            "longitude": member.location.get("longitude", 0),
            "gmtoff": 0,
            "dstoff": 0,
            "country_code": "",
            "timezone": "",
            "region": "",
        },
        "source": "API - Generic",
        "tags_count": len(member.tags),
        "tags": [{"id": tid, "name": name} for name, (tid, _) in member.tags.items()],
        "list_id": audience.id,
        "_links": [],
    }


def member_snapshot(member: Member) -> dict[str, Any]:
    """Ground truth of one member for `/_sandbox/state`."""
    return {
        "email_address": member.email,
        "status": member.status,
        "status_history": list(member.status_history),
        "merge_fields": dict(member.merge_fields),
        "interests": dict(member.interests),
        "language": member.language,
        "vip": member.vip,
        "tags": sorted(member.tags),
        "events": [
            {
                "name": e.name,
                "properties": dict(e.properties),
                "occurred_at": e.occurred_at,
                "is_syncing": e.is_syncing,
                "received_at": e.received_at,
            }
            for e in member.events
        ],
        "last_changed": member.last_changed,
    }
