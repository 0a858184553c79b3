"""HTTP-shaped member operations: get, list, add, upsert, update, archive, delete permanently."""

from __future__ import annotations

from collections.abc import Callable

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.members import (
    STATUSES,
    change_email,
    check_email,
    check_email_change,
    check_hash_matches,
    check_status,
    member_json,
    path_hash,
    upsert,
)
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply
from esp_sandbox.mailchimp.store import Audience, MailchimpStore, Member

AudienceOf = Callable[[Call], Audience]


def find_member(audience: Audience, raw_hash: str) -> Member:
    """The live (not archived, not forgotten) member for a path segment, else 404."""
    member = audience.members.get(path_hash(raw_hash))
    if member is None:
        raise errors.not_found()
    return member


def install(table: OperationTable, store: MailchimpStore, audience_of: AudienceOf) -> None:
    """Register the member operations."""

    def get_member(call: Call) -> Reply:
        audience = audience_of(call)
        return Reply(200, member_json(audience, find_member(audience, call.path_params["hash"])))

    def list_members(call: Call) -> Reply:
        audience = audience_of(call)
        members = list(audience.members.values())
        wanted = call.query.get("status")
        if wanted:
            members = [m for m in members if m.status == wanted]
        return Reply(
            200,
            {
                "members": [member_json(audience, m) for m in call.page(members)],
                "list_id": audience.id,
                "total_items": len(members),
                "_links": [],
            },
        )

    def put_member(call: Call) -> Reply:
        audience, body = audience_of(call), call.object_body()
        raw = call.path_params["hash"]
        existing = audience.members.get(path_hash(raw))
        if "email_address" in body or existing is None:
            email = check_email(body.get("email_address"))
            check_hash_matches(raw, email)
        else:
            email = existing.email
        status_if_new = body.get("status_if_new")
        if status_if_new is not None:
            check_status(status_if_new, "status_if_new")
        status = body.get("status")
        if status is not None:
            check_status(status, "status")
        member, _ = upsert(
            store,
            audience,
            email,
            body,
            status_if_new=status_if_new,
            status=status,
            skip_required=call.flag("skip_merge_validation"),
        )
        return Reply(200, member_json(audience, member))

    def patch_member(call: Call) -> Reply:
        audience, body = audience_of(call), call.object_body()
        member = find_member(audience, call.path_params["hash"])
        email = member.email
        if "email_address" in body:
            # An update may change the address (spec: PATCH body `email_address`).
            email = check_email(body["email_address"])
            check_email_change(audience, member, email)
        status = body.get("status")
        if status is not None:
            check_status(status, "status", STATUSES[:-1])
        updated, _ = upsert(
            store,
            audience,
            member.email,
            body,
            status_if_new=None,
            status=status,
            skip_required=call.flag("skip_merge_validation"),
        )
        return Reply(200, member_json(audience, change_email(audience, updated, email)))

    def post_member(call: Call) -> Reply:
        audience, body = audience_of(call), call.object_body()
        email = check_email(body.get("email_address"))
        status = check_status(body.get("status"), "status")
        existing = audience.members.get(path_hash(email))
        if existing is not None and existing.status != "archived":
            raise errors.member_exists(email)
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise errors.schema_mismatch("tags", "array", tags)
        member, _ = upsert(
            store,
            audience,
            email,
            body,
            status_if_new=status,
            status=None,
            skip_required=call.flag("skip_merge_validation"),
        )
        for name in tags:
            member.tags[name] = (audience.tag_id(name), store.now())
        return Reply(200, member_json(audience, member))

    def archive_member(call: Call) -> Reply:
        audience = audience_of(call)
        member = find_member(audience, call.path_params["hash"])
        if member.status in ("pending", "archived"):
            raise errors.MailchimpError(
                405,
                "Method Not Allowed",
                "This list member cannot be removed. "
                "Can not archive a contact that is bounced, pending or archived",
            )
        member.status = "archived"
        member.status_history.append("archived")
        return Reply(204)

    def delete_permanent(call: Call) -> Reply:
        audience = audience_of(call)
        member = find_member(audience, call.path_params["hash"])
        key = path_hash(member.email)
        del audience.members[key]
        audience.forgotten.add(key)
        return Reply(204)

    base = "/lists/{list_id}/members"
    table.add("GET", base, list_members)
    table.add("POST", base, post_member)
    table.add("GET", base + "/{hash}", get_member)
    table.add("PUT", base + "/{hash}", put_member)
    table.add("PATCH", base + "/{hash}", patch_member)
    table.add("DELETE", base + "/{hash}", archive_member)
    table.add("POST", base + "/{hash}/actions/delete-permanent", delete_permanent)
