"""Customer Journey API trigger, plus the sandbox-only journey configuration.

`POST /customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger`
with `{"email_address"}` answers 204. Unknown journeys or steps are 404. The
contact must be a subscribed member of the journey's audience (sandbox rule:
Mailchimp only sends journeys to subscribed contacts; its exact error for this
case is not documented, so the sandbox answers 400 Invalid Resource).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.members import check_email
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply, parse_json
from esp_sandbox.mailchimp.store import (
    Journey,
    JourneyTrigger,
    MailchimpStore,
    subscriber_hash,
)


def _int_id(raw: str) -> int:
    if not raw.isdigit():
        raise errors.not_found()
    return int(raw)


def install(table: OperationTable, store: MailchimpStore) -> None:
    """Register the trigger operation."""

    def trigger(call: Call) -> Reply:
        journey = store.journeys.get(_int_id(call.path_params["journey_id"]))
        step_id = _int_id(call.path_params["step_id"])
        if journey is None or step_id not in journey.steps:
            raise errors.not_found()
        body = call.object_body()
        if "email_address" not in body:
            raise errors.invalid_field(
                "email_address", "Required fields were not provided: email_address"
            )
        email = check_email(body["email_address"])
        audience = store.audience(journey.list_id)
        member = audience.members.get(subscriber_hash(email)) if audience else None
        if member is None or member.status != "subscribed":
            raise errors.invalid(
                f"{email} is not a subscribed contact of the audience of journey {journey.id}."
            )
        store.triggers.append(JourneyTrigger(journey.id, step_id, email, store.now()))
        return Reply(204)

    table.add(
        "POST",
        "/customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger",
        trigger,
    )


def journey_json(journey: Journey) -> dict[str, Any]:
    """A configured journey for the sandbox helper and the state snapshot."""
    return {
        "journey_id": journey.id,
        "name": journey.name,
        "list_id": journey.list_id,
        "steps": sorted(journey.steps),
    }


def configure(store: MailchimpStore, body: Any) -> Journey:
    """Create or replace a journey from a sandbox helper body.

    Body: `{"journey_id": int, "steps": [int, ...], "list_id"?: str, "name"?: str}`;
    `list_id` defaults to the seeded audience.

    Raises:
        ValueError: When the body is malformed or the list is unknown.
    """
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    journey_id, steps = body.get("journey_id"), body.get("steps")
    if not isinstance(journey_id, int) or isinstance(journey_id, bool) or journey_id < 1:
        raise ValueError("journey_id must be a positive integer")
    if (
        not isinstance(steps, list)
        or not steps
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in steps)
    ):
        raise ValueError("steps must be a non-empty list of positive integers")
    list_id = body.get("list_id") or next(iter(store.lists), "")
    if list_id not in store.lists:
        raise ValueError(f"unknown list_id {list_id!r}")
    journey = Journey(
        journey_id, str(body.get("name") or f"Journey {journey_id}"), list_id, set(steps)
    )
    store.journeys[journey_id] = journey
    return journey


def admin_routes(router: APIRouter, store: MailchimpStore) -> None:
    """`GET/POST /_sandbox/mailchimp/journeys` (no auth; sandbox only)."""

    @router.get("/journeys")
    def list_journeys() -> dict[str, Any]:
        with store.lock:
            return {"journeys": [journey_json(j) for j in store.journeys.values()]}

    @router.post("/journeys", status_code=201)
    async def add_journey(request: Request) -> JSONResponse:
        try:
            body = parse_json(await request.body())
            with store.lock:
                journey = configure(store, body)
        except (ValueError, errors.MailchimpError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(journey_json(journey), status_code=201)
