"""Lists (audiences), the ground-truth snapshot, and reset."""

from __future__ import annotations

import httpx

from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import LIST_ID, member_hash, put_member

NEW_LIST = {
    "name": "Newsletter",
    "contact": {"company": "Acme", "address1": "1 Main", "city": "Town", "state": "CA",
                "zip": "12345", "country": "US"},
    "permission_reminder": "You signed up on our site.",
    "campaign_defaults": {"from_name": "Acme", "from_email": "news@example.com",
                          "subject": "", "language": "en"},
    "email_type_option": False,
}  # fmt: skip


def test_seeded_list_and_list_creation(mc: httpx.Client) -> None:
    lists = mc.get("/lists").json()
    assert [a["id"] for a in lists["lists"]] == [LIST_ID]
    assert lists["constraints"]["may_create"] is True
    made = mc.post("/lists", json=NEW_LIST)
    assert made.status_code == 200
    created = made.json()
    assert created["name"] == "Newsletter"
    assert created["stats"]["merge_field_count"] == 5
    assert mc.get(f"/lists/{created['id']}").json()["id"] == created["id"]
    assert mc.get("/lists").json()["total_items"] == 2
    incomplete = mc.post("/lists", json={"name": "x"})
    assert incomplete.status_code == 400
    assert {e["field"] for e in incomplete.json()["errors"]} == {
        "contact",
        "permission_reminder",
        "campaign_defaults",
        "email_type_option",
    }


def test_list_stats_count_members_by_status(mc: httpx.Client) -> None:
    put_member(mc, "a@example.com")
    put_member(mc, "b@example.com", "unsubscribed")
    stats = mc.get(f"/lists/{LIST_ID}").json()["stats"]
    assert (stats["member_count"], stats["unsubscribe_count"]) == (1, 1)
    assert mc.get("/").json()["total_subscribers"] == 1


def test_snapshot_is_ground_truth_and_reset_restores_the_seed(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    put_member(mc, "ann@example.com", merge_fields={"FNAME": "Ann"})
    mc.post(f"/lists/{LIST_ID}/members/{member_hash('ann@example.com')}/actions/delete-permanent")
    state = mc_server.state()["mailchimp"]
    assert state["dc"] == "us1"
    audience = state["lists"][LIST_ID]
    assert audience["members"] == {}
    assert audience["forgotten"] == [member_hash("ann@example.com")]
    assert set(audience["merge_fields"]) == {"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"}
    assert state["journeys"] == [
        {"journey_id": 1, "name": "Sandbox journey", "list_id": LIST_ID, "steps": [1]}
    ]
    mc_server.reset()
    after = mc_server.state()["mailchimp"]
    assert after["lists"][LIST_ID]["forgotten"] == []
    assert put_member(mc, "ann@example.com").status_code == 200


def test_requests_are_logged_without_the_api_key(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    put_member(mc, "ann@example.com")
    logged = [r for r in mc_server.requests() if r["path"].startswith("/3.0/lists")]
    assert logged
    assert "0123456789abcdef" not in str(logged)
