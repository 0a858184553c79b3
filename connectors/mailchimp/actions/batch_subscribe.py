"""Batch subscribe: `POST /lists/{id}` with up to 500 members, for volume.

`update_existing` is sent as **false**: Mailchimp documents it as "whether this batch
operation will change existing members' subscription status", and an upsert must
never change an existing member's status. Existing members come back as
`ERROR_CONTACT_EXISTS`; the sink then updates them one by one with the idempotent
`PUT` (status_if_new), so their merge fields change and their status does not.
Every other per-member error becomes a rejected outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.mailchimp.actions import ApiRequest, BatchLimits
from connectors.mailchimp.actions.upsert_member import member_body
from connectors.mailchimp.hashing import normalise_email

NAME = "batch_subscribe"
TITLE = "Batch subscribe members"
LIMITS = BatchLimits(default=500, maximum=500)
CONTACT_EXISTS = "ERROR_CONTACT_EXISTS"


@dataclass(frozen=True, slots=True)
class MemberError:
    """One entry of the response's `errors[]`."""

    email: str
    error: str
    code: str
    field: str | None


def build_request(
    list_id: str,
    members: Sequence[Mapping[str, Any]],
    status_if_new: str,
    skip_merge_validation: bool,
) -> ApiRequest:
    """`POST /lists/{list_id}` for ≤ 500 members (fields as resolved for upsert_member)."""
    if len(members) > LIMITS.maximum:
        raise ValueError(f"batch subscribe takes at most {LIMITS.maximum} members")
    body_members = []
    for fields in members:
        member = member_body(fields, status_if_new)
        member["status"] = member.pop("status_if_new")
        body_members.append(member)
    params = {
        "skip_merge_validation": "true" if skip_merge_validation else "false",
        "skip_duplicate_check": "false",
    }
    return ApiRequest(
        "POST",
        f"/lists/{list_id}",
        {"members": body_members, "update_existing": False},
        params,
    )


def parse_errors(body: Mapping[str, Any]) -> dict[str, MemberError]:
    """Per-member errors of a batch subscribe answer, by normalised email."""
    out: dict[str, MemberError] = {}
    for item in body.get("errors") or []:
        email = normalise_email(str(item.get("email_address", "")))
        error = str(item.get("error", ""))
        field, how = item.get("field"), item.get("field_message")
        if field and how:  # how to fix it, worded as a direct call's reject
            error = f"{error} ({field}: {how})"
        out[email] = MemberError(
            email=email,
            error=error,
            code=str(item.get("error_code", "")),
            field=(item.get("field") or None),
        )
    return out
