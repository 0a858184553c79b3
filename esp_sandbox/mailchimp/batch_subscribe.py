"""Batch subscribe: `POST /lists/{list_id}` with up to 500 members, partial failures per member.

Each member goes through the same `upsert` as a direct call; a failure becomes
an `errors[]` entry (`email_address`, `error`, `error_code`, `field`,
`field_message`) and never sinks the others. With a `partial` fault the
injector picks members that fail as Mailchimp's signup throttle does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import MailchimpError
from esp_sandbox.mailchimp.members import check_email, check_status, member_json, upsert
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply
from esp_sandbox.mailchimp.store import Audience, MailchimpStore, subscriber_hash

MAX_MEMBERS = 500


def throttled(email: str) -> MailchimpError:
    """The per-signup throttle error Mailchimp gives (used for injected partial failures)."""
    return errors.invalid(
        f"{email} has signed up to a lot of lists very recently; "
        "we're not allowing more signups for now"
    )


def _error_entry(email: Any, exc: MailchimpError, code: str = "ERROR_GENERIC") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "email_address": email if isinstance(email, str) else "",
        "error": exc.detail,
        "error_code": code,
    }
    if exc.errors:
        entry["field"] = exc.errors[0].field
        entry["field_message"] = exc.errors[0].message
    return entry


def _one(
    store: MailchimpStore,
    audience: Audience,
    raw: Any,
    *,
    update_existing: bool,
    skip_required: bool,
) -> tuple[str, dict[str, Any]]:
    """Apply one member; returns ("created"|"updated", member json)."""
    if not isinstance(raw, dict):
        raise errors.schema_mismatch("members", "object", raw)
    email = check_email(raw.get("email_address"))
    existing = audience.members.get(subscriber_hash(email))
    status = raw.get("status")
    if status is not None:
        check_status(status, "status")
    if existing is not None and existing.status != "archived" and not update_existing:
        raise MailchimpError(
            400,
            "Member Exists",
            f"{email} is already a list member, do you want to update? "
            "please provide update_existing:true in the request body",
        )
    status_if_new = raw.get("status_if_new") or status
    member, created = upsert(
        store,
        audience,
        email,
        raw,
        status_if_new=status_if_new,
        status=status if update_existing else None,
        skip_required=skip_required,
    )
    return ("created" if created else "updated"), member_json(audience, member)


def install(
    table: OperationTable, store: MailchimpStore, audience_of: Callable[[Call], Audience]
) -> None:
    """Register `POST /lists/{list_id}`."""

    def batch_subscribe(call: Call) -> Reply:
        audience, body = audience_of(call), call.object_body()
        members = body.get("members")
        if not isinstance(members, list):
            raise errors.invalid_field("members", "Required fields were not provided: members")
        if len(members) > MAX_MEMBERS:
            raise errors.invalid_field(
                "members", f"Schema describes array length of {MAX_MEMBERS} maximum"
            )
        update_existing = body.get("update_existing", False) is True
        skip_dupes = call.flag("skip_duplicate_check")
        failing = set(store.ctx.faults.partial_items(call.raw_path or call.path, len(members)))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, raw in enumerate(members):
            email = raw.get("email_address") if isinstance(raw, dict) else None
            key = subscriber_hash(email) if isinstance(email, str) else ""
            if key and key in seen:
                if not skip_dupes:
                    failures.append(
                        _error_entry(
                            email,
                            errors.invalid(f"{email} was provided more than once in this batch"),
                        )
                    )
                continue
            seen.add(key)
            if index in failing:
                failures.append(_error_entry(email, throttled(str(email))))
                continue
            try:
                kind, member = _one(
                    store,
                    audience,
                    raw,
                    update_existing=update_existing,
                    skip_required=call.flag("skip_merge_validation"),
                )
            except MailchimpError as exc:
                code = "ERROR_CONTACT_EXISTS" if exc.title == "Member Exists" else "ERROR_GENERIC"
                failures.append(_error_entry(email, exc, code))
                continue
            (created if kind == "created" else updated).append(member)
        return Reply(
            200,
            {
                "new_members": created,
                "updated_members": updated,
                "errors": failures,
                "total_created": len(created),
                "total_updated": len(updated),
                "error_count": len(failures),
                "_links": [],
            },
        )

    table.add("POST", "/lists/{list_id}", batch_subscribe)
