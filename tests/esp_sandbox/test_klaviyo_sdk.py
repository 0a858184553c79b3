"""Fidelity check with a client we did not write: the official `klaviyo_api` SDK.

The SDK turns every response into its pydantic models, so a field the sandbox
gets wrong fails here. `test_host` replaces the SDK's base URL
(`configuration.host`), and the SDK sends its own pinned revision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import event_body

klaviyo_api = pytest.importorskip("klaviyo_api")
openapi_client = pytest.importorskip("openapi_client")
ApiException = openapi_client.exceptions.ApiException


@pytest.fixture
def sdk_server(sandbox: Callable[..., SandboxServer]) -> Iterator[SandboxServer]:
    yield sandbox(time_scale=1, klaviyo_api_keys={"pk_sdk_session_key"})


def _sdk(server: SandboxServer, **options: Any) -> Any:
    return klaviyo_api.KlaviyoAPI(
        "pk_sdk_session_key", max_delay=2, max_retries=3, test_host=server.url, **options
    )


def test_sdk_sends_a_revision_the_sandbox_accepts(sdk_server: SandboxServer) -> None:
    sdk = _sdk(sdk_server)
    sdk.Events.create_event(event_body(unique_id="rev"))
    (logged,) = sdk_server.requests()
    assert logged["headers"]["revision"] == klaviyo_api.KlaviyoAPI._REVISION
    assert logged["headers"]["authorization"] == "[secure]"
    assert logged["status"] == 202


def test_scripted_sdk_session(sdk_server: SandboxServer) -> None:
    sdk = _sdk(sdk_server)

    assert sdk.Events.create_event(event_body(unique_id="o-1", time="2026-01-02T03:04:05Z")) is None

    created = sdk.Profiles.create_or_update_profile(
        {
            "data": {
                "type": "profile",
                "attributes": {"email": "ann@example.com", "first_name": "Ann"},
            }
        }
    )
    updated = sdk.Profiles.create_or_update_profile(
        {
            "data": {
                "type": "profile",
                "attributes": {"email": "ann@example.com", "last_name": "Lee"},
            }
        }
    )
    assert created.data.id == updated.data.id
    assert (updated.data.attributes.first_name, updated.data.attributes.last_name) == ("Ann", "Lee")

    bob = sdk.Profiles.create_profile(
        {"data": {"type": "profile", "attributes": {"phone_number": "+15005550006"}}}
    )
    with pytest.raises(ApiException) as conflict:
        sdk.Profiles.create_or_update_profile(
            {
                "data": {
                    "type": "profile",
                    "attributes": {"email": "ann@example.com", "phone_number": "+15005550006"},
                }
            }
        )
    assert conflict.value.status == 409
    (error,) = conflict.value.data.errors  # parsed into the SDK's error model
    assert error.code == "duplicate_profile"
    assert bob.data.id in conflict.value.body

    bulk_events = {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {
                "events-bulk-create": {
                    "data": [
                        {
                            "type": "event-bulk-create",
                            "attributes": {
                                "profile": {
                                    "data": {
                                        "type": "profile",
                                        "attributes": {"email": "ann@example.com"},
                                    }
                                },
                                "events": {
                                    "data": [
                                        {
                                            "type": "event",
                                            "attributes": {
                                                "properties": {"i": i},
                                                "unique_id": f"b-{i}",
                                                "metric": {
                                                    "data": {
                                                        "type": "metric",
                                                        "attributes": {"name": "Viewed"},
                                                    }
                                                },
                                            },
                                        }
                                        for i in range(3)
                                    ]
                                },
                            },
                        }
                    ]
                }
            },
        }
    }
    assert sdk.Events.bulk_create_events(bulk_events) is None

    new_list = sdk.Lists.create_list({"data": {"type": "list", "attributes": {"name": "VIP"}}})
    job = sdk.Profiles.bulk_import_profiles(
        {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {
                        "data": [
                            {"type": "profile", "attributes": {"email": "c@example.com"}},
                            {"type": "profile", "attributes": {"email": "not-an-email"}},
                        ]
                    }
                },
                "relationships": {"lists": {"data": [{"type": "list", "id": new_list.data.id}]}},
            }
        }
    )
    assert job.data.attributes.status == "queued"
    sdk_server.advance_clock(3)
    done = sdk.Profiles.get_bulk_import_profiles_job(job.data.id)
    assert (done.data.attributes.status, done.data.attributes.failed_count) == ("complete", 1)
    errors = sdk.Profiles.get_bulk_profile_import_job_import_errors(job.data.id)
    assert (
        errors.data[0].attributes.source.pointer
        == "/data/attributes/profiles/data/1/attributes/email"
    )

    subscribed = sdk.Profiles.bulk_subscribe_profiles(
        {
            "data": {
                "type": "profile-subscription-bulk-create-job",
                "attributes": {
                    "profiles": {
                        "data": [
                            {
                                "type": "profile",
                                "attributes": {
                                    "email": "ann@example.com",
                                    "subscriptions": {
                                        "email": {"marketing": {"consent": "SUBSCRIBED"}}
                                    },
                                },
                            }
                        ]
                    }
                },
                "relationships": {"list": {"data": {"type": "list", "id": new_list.data.id}}},
            }
        }
    )
    assert subscribed is None
    found = sdk.Profiles.get_profiles(filter='equals(email,"ann@example.com")')
    assert [p.id for p in found.data] == [created.data.id]
    assert sdk.Accounts.get_accounts().data[0].attributes.public_api_key
    assert len(sdk.Templates.get_templates().data) >= 2
    assert len(sdk.Lists.get_lists().data) == 1

    state = sdk_server.state()["klaviyo"]
    assert state["event_count"] == 4
    ann = next(p for p in state["profiles"] if p["email"] == "ann@example.com")
    assert ann["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    assert sorted(state["lists"][0]["members"]) == sorted([ann["id"], *done_profile_ids(state)])


def done_profile_ids(state: dict[str, Any]) -> list[str]:
    return [pid for job in state["bulk_import_jobs"] for pid in job["profile_ids"]]


def test_sdk_retries_a_real_429_and_succeeds(sdk_server: SandboxServer) -> None:
    sdk = _sdk(sdk_server)
    clock = sdk_server.app.sandbox.clock
    while clock.monotonic() % 1.0 > 0.05:  # both calls must land in one 1-second window
        time.sleep(0.01)
    started = time.monotonic()
    sdk.Accounts.get_accounts()
    sdk.Accounts.get_accounts()  # XS tier: 1/s burst -> 429 Retry-After 1, SDK waits, retries
    assert time.monotonic() - started >= 0.5
    statuses = [r["status"] for r in sdk_server.requests()]
    assert statuses[:3] == [200, 429, 200]


def test_sdk_retries_injected_503(sdk_server: SandboxServer) -> None:
    sdk_server.set_faults("503@/api/events=1#1")
    _sdk(sdk_server).Events.create_event(event_body(unique_id="x"))
    assert [r["status"] for r in sdk_server.requests()] == [503, 202]
    assert sdk_server.state()["klaviyo"]["event_count"] == 1
