"""Member events and member tags.

Events: `name` 2-30 characters (M-SPEC) of letters, digits, `_` and `-` (integrator
docs; the character set is not in an official source), `properties` string values
only, `occurred_at` ISO 8601, `is_syncing` boolean. 204 on success; the member
must exist. Tags: `{"tags": [{"name", "status": "active"|"inactive"}]}`; an active
tag that does not exist is created; tag names are 1-100 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import FieldError
from esp_sandbox.mailchimp.member_routes import find_member
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply
from esp_sandbox.mailchimp.store import Audience, MailchimpStore, MemberEvent, iso

EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]{2,30}$")
TAG_NAME_MAX = 100


def parse_event(body: dict[str, Any], received_at: str) -> MemberEvent:
    """Validate an event body.

    Raises:
        MailchimpError: 400 Invalid Resource naming each bad field.
    """
    problems: list[FieldError] = []
    name = body.get("name")
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        problems.append(
            FieldError(
                "name",
                "Event names must be 2-30 characters of letters, numbers, underscores or dashes.",
            )
        )
    properties = body.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        problems.append(FieldError("properties", "Schema describes object"))
        properties = {}
    for key, value in properties.items():
        if not isinstance(value, str):
            problems.append(
                FieldError(
                    f"properties.{key}",
                    f"Schema describes string, {errors.type_name(value)} found instead",
                )
            )
    is_syncing = body.get("is_syncing", False)
    if not isinstance(is_syncing, bool):
        problems.append(FieldError("is_syncing", "Schema describes boolean"))
    occurred_at = _occurred_at(body.get("occurred_at"), received_at, problems)
    if problems:
        raise errors.invalid(errors.VALIDATION_DETAIL, *problems)
    return MemberEvent(
        name=str(name),
        properties=dict(properties),
        occurred_at=occurred_at,
        is_syncing=bool(is_syncing),
        received_at=received_at,
    )


def _occurred_at(value: Any, default: str, problems: list[FieldError]) -> str:
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        problems.append(FieldError("occurred_at", "Please provide an ISO 8601 date-time."))
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment.astimezone(UTC))


def _apply_tags(store: MailchimpStore, audience: Audience, call: Call) -> None:
    member = find_member(audience, call.path_params["hash"])
    body = call.object_body()
    tags = body.get("tags")
    if not isinstance(tags, list):
        raise errors.invalid_field("tags", "Required fields were not provided: tags")
    problems: list[FieldError] = []
    for index, tag in enumerate(tags):
        name = tag.get("name") if isinstance(tag, dict) else None
        status = tag.get("status") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= TAG_NAME_MAX:
            problems.append(
                FieldError(f"tags.{index}.name", f"Tag names are 1-{TAG_NAME_MAX} characters.")
            )
        if status not in ("active", "inactive"):
            problems.append(
                FieldError(f"tags.{index}.status", "Status must be 'active' or 'inactive'.")
            )
    if problems:
        raise errors.invalid(errors.VALIDATION_DETAIL, *problems)
    for tag in tags:
        name = tag["name"].strip()
        if tag["status"] == "active":
            member.tags.setdefault(name, (audience.tag_id(name), store.now()))
        else:
            member.tags.pop(name, None)


def install(
    table: OperationTable, store: MailchimpStore, audience_of: Callable[[Call], Audience]
) -> None:
    """Register the event and tag operations."""

    def post_event(call: Call) -> Reply:
        audience = audience_of(call)
        member = find_member(audience, call.path_params["hash"])
        event = parse_event(call.object_body(), store.now())
        member.events.append(event)
        return Reply(204)

    def list_events(call: Call) -> Reply:
        audience = audience_of(call)
        member = find_member(audience, call.path_params["hash"])
        ordered = sorted(member.events, key=lambda e: e.occurred_at, reverse=True)
        page = call.page(ordered)
        return Reply(
            200,
            {
                "events": [
                    {"occurred_at": e.occurred_at, "name": e.name, "properties": e.properties}
                    for e in page
                ],
                "total_items": len(ordered),
                "_links": [],
            },
        )

    def post_tags(call: Call) -> Reply:
        _apply_tags(store, audience_of(call), call)
        return Reply(204)

    def list_tags(call: Call) -> Reply:
        audience = audience_of(call)
        member = find_member(audience, call.path_params["hash"])
        items = [
            {"id": tid, "name": name, "date_added": added}
            for name, (tid, added) in member.tags.items()
        ]
        return Reply(
            200,
            {"tags": call.page(items), "total_items": len(items), "_links": []},
        )

    base = "/lists/{list_id}/members/{hash}"
    table.add("POST", base + "/events", post_event)
    table.add("GET", base + "/events", list_events)
    table.add("POST", base + "/tags", post_tags)
    table.add("GET", base + "/tags", list_tags)
