"""Member semantics: hash check, status rules, compliance, merge-field validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import (
    LIST_ID,
    PROBLEM,
    member_hash,
    member_path,
    put_member,
)


def _problem(response: httpx.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["title"] == title
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert body["status"] == status
    return body


def _state_member(server: SandboxServer, email: str) -> dict[str, Any]:
    members: dict[str, Any] = server.state()["mailchimp"]["lists"][LIST_ID]["members"]
    return dict(members[member_hash(email)])


def test_put_creates_member_keyed_by_md5_of_lowercase_email(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    response = put_member(mc, "Ann@Example.com", merge_fields={"FNAME": "Ann"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == member_hash("ann@example.com")
    assert body["status"] == "subscribed"
    assert body["merge_fields"]["FNAME"] == "Ann"
    assert body["merge_fields"]["LNAME"] == ""
    assert mc.get(member_path("ann@example.com")).json()["email_address"] == "Ann@Example.com"
    assert _state_member(mc_server, "ann@example.com")["status"] == "subscribed"


def test_hash_not_matching_body_email_is_rejected(mc: httpx.Client) -> None:
    response = mc.put(
        member_path("someone-else@example.com"),
        json={"email_address": "ann@example.com", "status_if_new": "subscribed"},
    )
    body = _problem(response, 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "email_address"


def test_path_may_be_the_email_address(mc: httpx.Client) -> None:
    response = mc.put(
        f"/lists/{LIST_ID}/members/ann@example.com",
        json={"email_address": "ann@example.com", "status_if_new": "pending"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_new_member_needs_status_if_new_or_status(mc: httpx.Client) -> None:
    response = mc.put(member_path("ann@example.com"), json={"email_address": "ann@example.com"})
    body = _problem(response, 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "status_if_new"
    # `status` alone is enough for a new member (RudderStack sends only status).
    alone = mc.put(
        member_path("ann@example.com"),
        json={"email_address": "ann@example.com", "status": "subscribed"},
    )
    assert alone.status_code == 200


def test_status_if_new_does_not_change_an_existing_member(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    put_member(mc, "ann@example.com", "pending")
    again = put_member(mc, "ann@example.com", "subscribed", merge_fields={"LNAME": "Lee"})
    assert again.json()["status"] == "pending"
    explicit = mc.put(
        member_path("ann@example.com"),
        json={"email_address": "ann@example.com", "status": "subscribed"},
    )
    assert explicit.json()["status"] == "subscribed"
    state = _state_member(mc_server, "ann@example.com")
    assert state["status_history"] == ["pending", "subscribed"]
    assert state["merge_fields"] == {"LNAME": "Lee"}


@pytest.mark.parametrize("old", ["unsubscribed", "cleaned"])
@pytest.mark.parametrize("new", ["subscribed", "pending"])
def test_compliance_state_blocks_resubscribe(mc: httpx.Client, old: str, new: str) -> None:
    put_member(mc, "ann@example.com", old)
    response = mc.put(
        member_path("ann@example.com"),
        json={"email_address": "ann@example.com", "status_if_new": "subscribed", "status": new},
    )
    body = _problem(response, 400, "Member In Compliance State")
    assert "ann@example.com" in body["detail"]
    patch = mc.patch(member_path("ann@example.com"), json={"status": new})
    _problem(patch, 400, "Member In Compliance State")
    # Updating other data of such a member is still allowed.
    ok = put_member(mc, "ann@example.com", merge_fields={"FNAME": "Ann"})
    assert ok.status_code == 200
    assert ok.json()["status"] == old


def test_permanently_deleted_member_cannot_be_reimported(mc: httpx.Client) -> None:
    put_member(mc, "ann@example.com")
    deleted = mc.post(member_path("ann@example.com", "/actions/delete-permanent"))
    assert deleted.status_code == 204
    assert mc.get(member_path("ann@example.com")).status_code == 404
    body = _problem(put_member(mc, "ann@example.com"), 400, "Forgotten Email Not Subscribed")
    assert "permanently deleted" in body["detail"]
    post = mc.post(
        f"/lists/{LIST_ID}/members",
        json={"email_address": "ann@example.com", "status": "subscribed"},
    )
    _problem(post, 400, "Forgotten Email Not Subscribed")


def test_post_member_twice_is_member_exists(mc: httpx.Client) -> None:
    body = {"email_address": "ann@example.com", "status": "subscribed", "tags": ["vip"]}
    first = mc.post(f"/lists/{LIST_ID}/members", json=body)
    assert first.status_code == 200
    assert first.json()["tags"][0]["name"] == "vip"
    _problem(mc.post(f"/lists/{LIST_ID}/members", json=body), 400, "Member Exists")


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "", "ann@@example.com", 42])
def test_invalid_email_is_invalid_resource(mc: httpx.Client, email: object) -> None:
    response = mc.post(
        f"/lists/{LIST_ID}/members", json={"email_address": email, "status": "subscribed"}
    )
    body = _problem(response, 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "email_address"


def test_invalid_status_names_the_field(mc: httpx.Client) -> None:
    response = put_member(mc, "ann@example.com", "subscribe")
    body = _problem(response, 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "status_if_new"


def test_patch_unknown_member_is_404_and_transactional_not_allowed(mc: httpx.Client) -> None:
    _problem(mc.patch(member_path("nobody@example.com"), json={}), 404, "Resource Not Found")
    put_member(mc, "ann@example.com")
    response = mc.patch(member_path("ann@example.com"), json={"status": "transactional"})
    _problem(response, 400, "Invalid Resource")


def test_unknown_list_is_404(mc: httpx.Client) -> None:
    _problem(mc.get("/lists/doesnotexist/members"), 404, "Resource Not Found")


def test_archive_then_put_brings_member_back(mc: httpx.Client, mc_server: SandboxServer) -> None:
    put_member(mc, "ann@example.com")
    assert mc.delete(member_path("ann@example.com")).status_code == 204
    assert mc.get(member_path("ann@example.com")).json()["status"] == "archived"
    again = put_member(mc, "ann@example.com", "pending")
    assert again.json()["status"] == "pending"
    state = _state_member(mc_server, "ann@example.com")
    assert state["status_history"] == ["subscribed", "archived", "pending"]


def test_body_that_is_not_json_or_not_an_object(mc: httpx.Client) -> None:
    raw = mc.put(member_path("ann@example.com"), content=b"{nope")
    _problem(raw, 400, "JSON Parse Error")
    array = mc.put(member_path("ann@example.com"), json=[1])
    _problem(array, 400, "Invalid Resource")


def test_list_members_filters_by_status(mc: httpx.Client) -> None:
    put_member(mc, "a@example.com")
    put_member(mc, "b@example.com", "unsubscribed")
    page = mc.get(f"/lists/{LIST_ID}/members", params={"status": "unsubscribed"}).json()
    assert page["total_items"] == 1
    assert page["members"][0]["email_address"] == "b@example.com"


def test_missing_or_blank_email_errors(mc: httpx.Client) -> None:
    missing = mc.post(f"/lists/{LIST_ID}/members", json={"status": "subscribed"})
    body = _problem(missing, 400, "Invalid Resource")
    assert body["errors"][0] == {
        "field": "",
        "message": "Required fields were not provided: email_address",
    }
    blank = mc.post(
        f"/lists/{LIST_ID}/members", json={"email_address": " ", "status": "subscribed"}
    )
    assert _problem(blank, 400, "Invalid Resource")["errors"][0]["message"] == (
        "This value should not be blank."
    )


def test_patch_with_a_new_address_changes_the_members_email(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    # Spec: PATCH /lists/{list_id}/members/{subscriber_hash} "Update list member", body
    # Add_List_Members_3 with `email_address`: the same member, under its new address.
    put_member(mc, "old@example.com", "unsubscribed", merge_fields={"FNAME": "Ann"})
    response = mc.patch(member_path("old@example.com"), json={"email_address": "New@Example.com"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == member_hash("new@example.com")
    assert body["status"] == "unsubscribed" and body["merge_fields"]["FNAME"] == "Ann"
    _problem(mc.get(member_path("old@example.com")), 404, "Resource Not Found")
    state = _state_member(mc_server, "new@example.com")
    assert state["email_address"] == "New@Example.com"
    assert state["status_history"] == ["unsubscribed"]


def test_patch_to_an_address_another_member_has_is_member_exists(mc: httpx.Client) -> None:
    put_member(mc, "old@example.com")
    put_member(mc, "taken@example.com")
    response = mc.patch(member_path("old@example.com"), json={"email_address": "taken@example.com"})
    _problem(response, 400, "Member Exists")
    assert mc.get(member_path("old@example.com")).status_code == 200


def test_utf8_is_accepted_in_the_domain_but_not_the_prefix(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    # Mailchimp help, "International characters in Mailchimp": UTF-8 characters are
    # refused in an address's prefix (dirección@domain.com) and accepted in its
    # domain (test@ñoñó1234.com, an internationalized domain name).
    accepted = put_member(mc, "test@ÑOÑÓ1234.com")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["id"] == member_hash("test@ñoñó1234.com")
    refused = mc.post(
        f"/lists/{LIST_ID}/members",
        json={"email_address": "dirección@domain.com", "status": "subscribed"},
    )
    body = _problem(refused, 400, "Invalid Resource")
    assert body["errors"][0]["field"] == "email_address"
