"""Member events (name rule, string properties, read-back), member tags, journey triggers."""

from __future__ import annotations

import httpx
import pytest

from esp_sandbox.mailchimp import SEED_JOURNEY_ID, SEED_STEP_ID
from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import LIST_ID, member_hash, member_path, put_member

EMAIL = "ann@example.com"


@pytest.fixture
def ann(mc: httpx.Client) -> httpx.Client:
    assert put_member(mc, EMAIL).status_code == 200
    return mc


@pytest.mark.parametrize(
    "name", ["ab", "cart_abandoned", "Order-Completed", "x" * 30, "22", "viewed_product_2"]
)
def test_valid_event_names_are_accepted(ann: httpx.Client, name: str) -> None:
    response = ann.post(member_path(EMAIL, "/events"), json={"name": name})
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("name", ["a", "x" * 31, "local testing", "order.completed", "", None, 7])
def test_invalid_event_names_are_rejected(ann: httpx.Client, name: object) -> None:
    response = ann.post(member_path(EMAIL, "/events"), json={"name": name})
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Resource"
    assert body["errors"][0]["field"] == "name"


def test_event_properties_must_be_strings(ann: httpx.Client) -> None:
    body = {"name": "purchased", "properties": {"total": 42.0, "sku": "G-32", "gift": False}}
    response = ann.post(member_path(EMAIL, "/events"), json=body)
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"properties.total", "properties.gift"}


def test_event_is_stored_and_read_back_newest_first(
    ann: httpx.Client, mc_server: SandboxServer
) -> None:
    first = {
        "name": "cart_abandoned",
        "properties": {"cart_id": "c-1"},
        "occurred_at": "2026-07-20T12:00:00+02:00",
        "is_syncing": True,
    }
    second = {"name": "purchased", "occurred_at": "2026-07-21T10:00:00Z"}
    assert ann.post(member_path(EMAIL, "/events"), json=first).status_code == 204
    assert ann.post(member_path(EMAIL, "/events"), json=second).status_code == 204
    page = ann.get(member_path(EMAIL, "/events")).json()
    assert page["total_items"] == 2
    assert [e["name"] for e in page["events"]] == ["purchased", "cart_abandoned"]
    assert page["events"][1]["occurred_at"] == "2026-07-20T10:00:00+00:00"
    assert page["events"][1]["properties"] == {"cart_id": "c-1"}
    state = mc_server.state()["mailchimp"]["lists"][LIST_ID]["members"][member_hash(EMAIL)]
    assert [e["is_syncing"] for e in state["events"]] == [True, False]
    assert ann.get(member_path(EMAIL, "/events"), params={"count": 1}).json()["events"][0][
        "name"
    ] == ("purchased")


def test_event_bad_occurred_at_and_unknown_member(ann: httpx.Client) -> None:
    bad_time = ann.post(member_path(EMAIL, "/events"), json={"name": "x_y", "occurred_at": "soon"})
    assert bad_time.json()["errors"][0]["field"] == "occurred_at"
    unknown = ann.post(member_path("nobody@example.com", "/events"), json={"name": "x_y"})
    assert unknown.status_code == 404


def test_tags_add_remove_and_read(ann: httpx.Client) -> None:
    body = {"tags": [{"name": "VIP", "status": "active"}, {"name": "Trial", "status": "active"}]}
    assert ann.post(member_path(EMAIL, "/tags"), json=body).status_code == 204
    remove = {
        "tags": [{"name": "Trial", "status": "inactive"}, {"name": "Gone", "status": "inactive"}]
    }
    assert ann.post(member_path(EMAIL, "/tags"), json=remove).status_code == 204
    tags = ann.get(member_path(EMAIL, "/tags")).json()
    assert [t["name"] for t in tags["tags"]] == ["VIP"]
    assert tags["total_items"] == 1
    assert {"id", "name", "date_added"} <= set(tags["tags"][0])
    assert ann.get(member_path(EMAIL)).json()["tags_count"] == 1


@pytest.mark.parametrize(
    "tag",
    [{"name": "x" * 101, "status": "active"}, {"name": "", "status": "active"}, {"name": "ok"}],
)
def test_bad_tags_are_rejected(ann: httpx.Client, tag: dict[str, str]) -> None:
    response = ann.post(member_path(EMAIL, "/tags"), json={"tags": [tag]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("tags.0")


def _trigger(client: httpx.Client, journey: object, step: object, email: str) -> httpx.Response:
    path = f"/customer-journeys/journeys/{journey}/steps/{step}/actions/trigger"
    return client.post(path, json={"email_address": email})


def test_journey_trigger_204_and_recorded(ann: httpx.Client, mc_server: SandboxServer) -> None:
    response = _trigger(ann, SEED_JOURNEY_ID, SEED_STEP_ID, EMAIL)
    assert response.status_code == 204
    triggers = mc_server.state()["mailchimp"]["journey_triggers"]
    assert [(t["journey_id"], t["step_id"], t["email"]) for t in triggers] == [(1, 1, EMAIL)]


@pytest.mark.parametrize(("journey", "step"), [(999, 1), (1, 999), ("abc", 1)])
def test_unknown_journey_or_step_is_404(ann: httpx.Client, journey: object, step: object) -> None:
    response = _trigger(ann, journey, step, EMAIL)
    assert response.status_code == 404
    assert response.json()["title"] == "Resource Not Found"


def test_trigger_needs_a_subscribed_contact(ann: httpx.Client) -> None:
    assert _trigger(ann, 1, 1, "nobody@example.com").status_code == 400
    put_member(ann, "unsub@example.com", "unsubscribed")
    assert _trigger(ann, 1, 1, "unsub@example.com").status_code == 400


def test_journeys_are_configurable(ann: httpx.Client, mc_server: SandboxServer) -> None:
    made = httpx.post(
        mc_server.url + "/_sandbox/mailchimp/journeys",
        json={"journey_id": 42, "steps": [7, 8], "name": "Welcome"},
    )
    assert made.status_code == 201
    assert made.json()["list_id"] == LIST_ID
    assert _trigger(ann, 42, 8, EMAIL).status_code == 204
    bad = httpx.post(mc_server.url + "/_sandbox/mailchimp/journeys", json={"journey_id": "x"})
    assert bad.status_code == 400
