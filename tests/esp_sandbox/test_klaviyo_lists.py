"""Lists, membership, subscribe/unsubscribe jobs, accounts and templates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from esp_sandbox.klaviyo.spec import shared_spec
from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import klaviyo_client

needs_spec = pytest.mark.skipif(
    not shared_spec().available, reason="the official Klaviyo spec (../shared) is absent"
)


def _send(server: SandboxServer, method: str, path: str, body: Any = None) -> httpx.Response:
    with klaviyo_client(server) as client:
        return client.request(method, path, json=body)


def _new_list(server: SandboxServer, name: str = "News", opt_in: str = "single_opt_in") -> str:
    body = {"data": {"type": "list", "attributes": {"name": name, "opt_in_process": opt_in}}}
    response = _send(server, "POST", "/api/lists", body)
    assert response.status_code == 201
    list_id: str = response.json()["data"]["id"]
    return list_id


def _subscribe(
    profiles: list[dict[str, Any]], list_id: str | None = None, historical: bool = False
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {
            "historical_import": historical,
            "profiles": {"data": [{"type": "profile", "attributes": p} for p in profiles]},
        },
    }
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def _email_consent(email: str, consent: str = "SUBSCRIBED", **extra: str) -> dict[str, Any]:
    return {
        "email": email,
        "subscriptions": {"email": {"marketing": {"consent": consent, **extra}}},
    }


def test_subscribe_sets_consent_and_membership(server: SandboxServer) -> None:
    list_id = _new_list(server)
    body = _subscribe([_email_consent("ann@example.com")], list_id)
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-create-jobs/", body).status_code
        == 202
    )
    state = server.state()["klaviyo"]
    (profile,) = state["profiles"]
    assert profile["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    assert state["lists"][0]["members"] == [profile["id"]]


def test_double_opt_in_list_leaves_consent_pending(server: SandboxServer) -> None:
    list_id = _new_list(server, opt_in="double_opt_in")
    _send(
        server,
        "POST",
        "/api/profile-subscription-bulk-create-jobs",
        _subscribe([_email_consent("a@example.com")], list_id),
    )
    state = server.state()["klaviyo"]
    assert state["profiles"][0]["subscriptions"]["email"]["marketing"]["consent"] == "PENDING"
    assert state["lists"][0]["members"] == []


def test_consent_must_be_subscribed(server: SandboxServer) -> None:
    body = _subscribe([_email_consent("a@example.com", consent="UNSUBSCRIBED")])
    response = _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", body)
    assert response.status_code == 400
    pointer = response.json()["errors"][0]["source"]["pointer"]
    assert pointer.startswith("/data/attributes/profiles/data/0/attributes/subscriptions/email")


def test_historical_import_needs_past_consented_at(server: SandboxServer) -> None:
    missing = _subscribe([_email_consent("a@example.com")], historical=True)
    response = _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", missing)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == (
        "/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consented_at"
    )
    future = _subscribe(
        [_email_consent("a@example.com", consented_at="2999-01-01T00:00:00Z")], historical=True
    )
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", future).status_code
        == 400
    )
    past = _subscribe(
        [_email_consent("a@example.com", consented_at="2024-01-01T00:00:00Z")], historical=True
    )
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", past).status_code == 202
    )


def test_consented_at_without_historical_import_is_refused(server: SandboxServer) -> None:
    # Spec, SubscriptionParameters.consented_at: without the historical_import flag,
    # "providing any value for this field will raise an error".
    body = _subscribe([_email_consent("a@example.com", consented_at="2024-01-01T00:00:00Z")])
    response = _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == (
        "/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consented_at"
    )


def test_subscribe_and_unsubscribe_count_limits(server: SandboxServer) -> None:
    many = _subscribe([_email_consent(f"u{i}@example.com") for i in range(1001)])
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-create-jobs", many).status_code == 400
    )
    unsub: dict[str, Any] = {
        "data": {
            "type": "profile-subscription-bulk-delete-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": _email_consent(f"u{i}@example.com", "UNSUBSCRIBED"),
                        }
                        for i in range(101)
                    ]
                }
            },
        }
    }
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-delete-jobs", unsub).status_code
        == 400
    )
    unsub["data"]["attributes"]["profiles"]["data"] = unsub["data"]["attributes"]["profiles"][
        "data"
    ][:100]
    assert (
        _send(server, "POST", "/api/profile-subscription-bulk-delete-jobs", unsub).status_code
        == 202
    )
    state = server.state()["klaviyo"]
    assert {p["subscriptions"]["email"]["marketing"]["consent"] for p in state["profiles"]} == {
        "UNSUBSCRIBED"
    }


def test_list_membership_add_remove_is_204_and_keeps_consent(server: SandboxServer) -> None:
    list_id = _new_list(server)
    made = _send(
        server,
        "POST",
        "/api/profiles",
        {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}},
    )
    pid = made.json()["data"]["id"]
    body = {"data": [{"type": "profile", "id": pid}]}
    assert (
        _send(server, "POST", f"/api/lists/{list_id}/relationships/profiles/", body).status_code
        == 204
    )
    assert server.state()["klaviyo"]["lists"][0]["members"] == [pid]
    assert (
        _send(server, "DELETE", f"/api/lists/{list_id}/relationships/profiles", body).status_code
        == 204
    )
    state = server.state()["klaviyo"]
    assert state["lists"][0]["members"] == []
    assert state["profiles"][0]["subscriptions"] == {}


def test_list_membership_limits_and_unknowns(server: SandboxServer) -> None:
    list_id = _new_list(server)
    too_many = {"data": [{"type": "profile", "id": f"P{i}"} for i in range(1001)]}
    assert (
        _send(server, "POST", f"/api/lists/{list_id}/relationships/profiles", too_many).status_code
        == 400
    )
    unknown = {"data": [{"type": "profile", "id": "NOPE"}]}
    response = _send(server, "POST", f"/api/lists/{list_id}/relationships/profiles", unknown)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/data/0/id"
    assert (
        _send(server, "POST", "/api/lists/NOLIST/relationships/profiles", unknown).status_code
        == 404
    )


def test_get_lists_accounts_templates(server: SandboxServer) -> None:
    _new_list(server, "One")
    with klaviyo_client(server) as client:
        lists = client.get("/api/lists").json()["data"]
        accounts = client.get("/api/accounts").json()["data"]
        templates = client.get("/api/templates").json()["data"]
    assert [item["attributes"]["name"] for item in lists] == ["One"]
    assert accounts[0]["type"] == "account"
    assert any("{{ event." in t["attributes"]["html"] for t in templates)
    assert any("{{ person." in t["attributes"]["html"] for t in templates)


def test_tests_can_add_templates(server: SandboxServer) -> None:
    added = httpx.post(
        f"{server.url}/_sandbox/klaviyo/templates",
        json={"id": "Welcome", "name": "Welcome", "html": "<p>Hi {{ person.first_name }}</p>"},
    )
    assert added.status_code == 201
    with klaviyo_client(server) as client:
        ids = [t["id"] for t in client.get("/api/templates").json()["data"]]
    assert "Welcome" in ids
    assert (
        httpx.post(f"{server.url}/_sandbox/klaviyo/templates", json={"name": "x"}).status_code
        == 400
    )


@needs_spec
@pytest.mark.parametrize("revision", ["2024-10-15", "2026-04-15"])
def test_unsubscribe_without_subscriptions_only_for_older_revisions(
    server: SandboxServer, revision: str
) -> None:
    body = {
        "data": {
            "type": "profile-subscription-bulk-delete-job",
            "attributes": {
                "profiles": {
                    "data": [{"type": "profile", "attributes": {"email": "a@example.com"}}]
                }
            },
        }
    }
    with klaviyo_client(server, revision=revision) as client:
        response = client.post("/api/profile-subscription-bulk-delete-jobs", json=body)
    assert response.status_code == (202 if revision < "2026-04-15" else 400)
