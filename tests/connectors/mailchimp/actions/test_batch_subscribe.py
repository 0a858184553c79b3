"""batch_subscribe: ≤ 500 members, update_existing false, per-member errors → outcomes."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.base import OutcomeStatus
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import batch_subscribe
from connectors.mailchimp.hashing import subscriber_hash
from tests.connectors.mailchimp.mc_testkit import (
    LIST_ID,
    Recorder,
    identify,
    message,
    ok,
    run,
    settings,
    validate_body,
)


def test_request_shape_validates_and_never_updates_existing_statuses() -> None:
    members = [{"email": f"p{i}@example.com", "merge_fields": {"FNAME": "P"}} for i in range(3)]
    request = batch_subscribe.build_request(LIST_ID, members, "subscribed", False)
    assert request.path == f"/lists/{LIST_ID}"
    assert request.json["update_existing"] is False
    assert request.json["members"][0] == {
        "email_address": "p0@example.com",
        "status": "subscribed",
        "merge_fields": {"FNAME": "P"},
    }
    assert validate_body(request.method, request.path, request.json) == []


def test_more_than_500_members_is_refused() -> None:
    members = [{"email": f"p{i}@example.com"} for i in range(501)]
    with pytest.raises(ValueError, match="at most 500"):
        batch_subscribe.build_request(LIST_ID, members, "subscribed", False)


async def test_per_member_errors_become_rejects_and_existing_members_get_a_put() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(f"/lists/{LIST_ID}"):
            members = json.loads(request.content)["members"]
            emails = {m["email_address"] for m in members}
            errors = [
                e
                for e in (
                    {
                        "email_address": "p1@example.com",
                        "error": "p1 is already a list member",
                        "error_code": "ERROR_CONTACT_EXISTS",
                    },
                    {
                        "email_address": "p2@example.com",
                        "error": "p2 looks fake or invalid",
                        "error_code": "ERROR_GENERIC",
                        "field": "email_address",
                    },
                )
                if e["email_address"] in emails
            ]
            new = [
                m for m in members if m["email_address"] not in {"p1@example.com", "p2@example.com"}
            ]
            return httpx.Response(200, json={"new_members": new, "errors": errors})
        return ok(request)

    recorder = Recorder(answer)
    s = settings(batch={"batch_subscribe_min": 2, "max_age_seconds": 60})
    dest = MailchimpDestination("mc", s, transport=recorder.transport())
    msgs = [identify(f"p{i}@example.com", message_id=f"m{i}") for i in range(1, 6)]
    _, outcomes = await run(dest, *msgs)
    status = {o.key: (o.status, o.reason) for o in outcomes}
    assert status["m1:upsert_member"][0] == OutcomeStatus.ACKNOWLEDGED  # via PUT
    assert status["m2:upsert_member"] == (OutcomeStatus.REJECTED, "p2 looks fake or invalid")
    assert all(status[f"m{i}:upsert_member"][0] == OutcomeStatus.ACKNOWLEDGED for i in (3, 4, 5))
    puts = [r.url.path for r in recorder.requests if r.method == "PUT"]
    assert puts == [f"/3.0/lists/{LIST_ID}/members/{subscriber_hash('p1@example.com')}"]
    posted = [m for body in recorder.bodies("POST", f"/lists/{LIST_ID}$") for m in body["members"]]
    assert sorted(m["email_address"] for m in posted) == [f"p{i}@example.com" for i in range(1, 6)]
    await dest.aclose()


async def test_members_are_grouped_by_audience() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, json={"new_members": [], "errors": []}))
    s = settings(batch={"batch_subscribe_min": 2, "max_age_seconds": 60})
    dest = MailchimpDestination("mc", s, transport=recorder.transport())
    msgs = [identify(f"p{i}@example.com", message_id=f"m{i}") for i in range(4)]
    other = message(
        {
            "type": "identify",
            "messageId": "m9",
            "traits": {"email": "x@example.com"},
            "integrations": {"Mailchimp": {"listId": "other123"}},
        }
    )
    _, outcomes = await run(dest, *msgs, other)
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    by_list: dict[str, set[str]] = {}
    for request in recorder.requests:
        members = json.loads(request.content)["members"]
        by_list.setdefault(request.url.path, set()).update(m["email_address"] for m in members)
    assert by_list == {
        f"/3.0/lists/{LIST_ID}": {f"p{i}@example.com" for i in range(4)},
        "/3.0/lists/other123": {"x@example.com"},
    }
    await dest.aclose()
