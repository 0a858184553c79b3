"""Fidelity check with a client we did not write: the official `mailchimp_marketing` SDK.

The SDK builds `host + path` and replaces the substring "server" with its
`server` config, so pointing `api_client.host` at `http://127.0.0.1:<port>/3.0`
is enough (the sandbox URL has no "server" in it). Error bodies are
`application/problem+json`, which the SDK hands back as text in `ApiClientError`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import API_KEY, LIST_ID, member_hash

mailchimp_marketing = pytest.importorskip("mailchimp_marketing")
api_client = pytest.importorskip("mailchimp_marketing.api_client")


def _client(server: SandboxServer) -> Any:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": API_KEY, "server": "us1"})
    client.api_client.host = server.mailchimp_url
    return client


def _error(exc: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.text)
    return body


def test_scripted_sdk_session(mc: httpx.Client, mc_server: SandboxServer) -> None:
    client = _client(mc_server)
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    assert client.root.get_root()["account_name"]
    fields = client.lists.get_list_merge_fields(LIST_ID)
    assert [f["tag"] for f in fields["merge_fields"]][:2] == ["FNAME", "LNAME"]

    email = "sdk.user@example.com"
    key = member_hash(email)
    member = client.lists.set_list_member(
        LIST_ID,
        key,
        {"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Sdk"}},
    )
    assert (member["id"], member["status"]) == (key, "subscribed")
    unsub = client.lists.update_list_member(LIST_ID, key, {"status": "unsubscribed"})
    assert unsub["status"] == "unsubscribed"
    with pytest.raises(api_client.ApiClientError) as conflict:
        client.lists.set_list_member(LIST_ID, key, {"email_address": email, "status": "subscribed"})
    assert conflict.value.status_code == 400
    assert _error(conflict.value)["title"] == "Member In Compliance State"

    client.lists.create_list_member_event(
        LIST_ID, key, {"name": "sdk_event", "properties": {"a": "1"}}
    )
    events = client.lists.get_list_member_events(LIST_ID, key)
    assert events["events"][0]["name"] == "sdk_event"

    client.lists.update_list_member_tags(
        LIST_ID, key, {"tags": [{"name": "sdk", "status": "active"}]}
    )
    assert client.lists.get_list_member_tags(LIST_ID, key)["tags"][0]["name"] == "sdk"

    batch = client.lists.batch_list_members(
        LIST_ID,
        {
            "members": [
                {"email_address": "b1@example.com", "status": "subscribed"},
                {"email_address": email, "status": "subscribed"},
            ],
            "update_existing": True,
        },
    )
    assert (batch["total_created"], batch["error_count"]) == (1, 1)

    started = client.batches.start(
        {
            "operations": [
                {
                    "method": "PUT",
                    "path": f"/lists/{LIST_ID}/members/{member_hash('b2@example.com')}",
                    "operation_id": "sdk-1",
                    "body": json.dumps(
                        {"email_address": "b2@example.com", "status_if_new": "pending"}
                    ),
                }
            ]
        }
    )
    assert started["status"] == "pending"
    mc_server.advance_clock(3)
    status = client.batches.status(started["id"])
    assert (status["status"], status["finished_operations"]) == ("finished", 1)
    assert status["response_body_url"].endswith(".tar.gz")

    client.customerJourneys.trigger(1, 1, {"email_address": "b1@example.com"})
    with pytest.raises(api_client.ApiClientError) as missing:
        client.customerJourneys.trigger(99, 1, {"email_address": "b1@example.com"})
    assert missing.value.status_code == 404


def test_sdk_sees_429_on_the_eleventh_simultaneous_connection(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    httpx.post(mc_server.url + "/_sandbox/mailchimp/latency", json={"seconds": 1.5})
    barrier = threading.Barrier(11)
    outcomes: list[object] = []

    def ping() -> None:
        client = _client(mc_server)
        barrier.wait()
        try:
            outcomes.append(client.ping.get()["health_status"])
        except api_client.ApiClientError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ping) for _ in range(11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [o for o in outcomes if isinstance(o, api_client.ApiClientError)]
    assert len(outcomes) - len(errors) == 10
    assert len(errors) == 1
    assert errors[0].status_code == 429
    assert _error(errors[0])["title"] == "Too Many Requests"


def test_sdk_with_wrong_data_center_key(mc_server: SandboxServer) -> None:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": "0123456789abcdef0123456789abcdef-us6", "server": "us1"})
    client.api_client.host = mc_server.mailchimp_url
    with pytest.raises(api_client.ApiClientError) as denied:
        client.ping.get()
    assert denied.value.status_code == 403
