"""Upsert member: `PUT /lists/{id}/members/{hash}` with `status_if_new`.

An upsert never sends `status`, so an existing member keeps theirs: an unsubscribed
or cleaned person is never re-subscribed by espbridge. Merge fields come from
`[destinations.<name>.merge_fields]`, converted per merge field type.

An email change (the customer's member, as espbridge stored its id, is under another
address) is a `PATCH` of that member with the new `email_address`, so the person
keeps their status, history and tags instead of becoming a second, new member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.mailchimp.actions import ApiRequest, BatchLimits, email_field, list_field
from connectors.mailchimp.hashing import subscriber_hash
from connectors.mailchimp.settings import MailchimpSettings
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "upsert_member"
TITLE = "Upsert member"
FIELDS: dict[str, FieldSpec] = {
    "email": email_field(),
    "list_id": list_field(),
    "language": FieldSpec(path=["traits.language"]),
}
DESCRIPTIONS = {
    "list_id": "The audience, when a message names its own (else the destination's list_id).",
    "email": "The member's email address (lower-cased and trimmed before hashing).",
    "language": "The member's language code, e.g. `fr` (Mailchimp's language list).",
}
LIMITS = BatchLimits(default=1, maximum=1)


def subscribes(message: Message, settings: MailchimpSettings) -> bool:
    """Identify calls upsert the member."""
    return message.type == "identify"


def member_body(fields: Mapping[str, Any], status_if_new: str) -> dict[str, Any]:
    """The member object: email, status_if_new, merge fields, language."""
    body: dict[str, Any] = {"email_address": fields["email"], "status_if_new": status_if_new}
    if fields.get("merge_fields"):
        body["merge_fields"] = dict(fields["merge_fields"])
    if fields.get("language"):
        body["language"] = fields["language"]
    return body


def build_rename_request(
    list_id: str, old_hash: str, fields: Mapping[str, Any], skip_merge_validation: bool
) -> ApiRequest:
    """`PATCH /lists/{list_id}/members/{old_hash}`: the member takes the new address.

    PATCH only updates (404 when there is no such member) and, without `status`,
    keeps the member's status: an unsubscribed person stays unsubscribed.
    """
    body = member_body(fields, "")
    del body["status_if_new"]
    params = {"skip_merge_validation": "true"} if skip_merge_validation else {}
    return ApiRequest("PATCH", f"/lists/{list_id}/members/{old_hash}", body, params)


def build_request(
    list_id: str, fields: Mapping[str, Any], status_if_new: str, skip_merge_validation: bool
) -> ApiRequest:
    """`PUT /lists/{list_id}/members/{subscriber_hash}`."""
    params = {"skip_merge_validation": "true"} if skip_merge_validation else {}
    return ApiRequest(
        "PUT",
        f"/lists/{list_id}/members/{subscriber_hash(fields['email'])}",
        member_body(fields, status_if_new),
        params,
    )
