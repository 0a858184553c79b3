"""Each injected fault kind, seen from a real HTTP client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import event_body, klaviyo_client


def _event_count(server: SandboxServer) -> int:
    count: int = server.state()["klaviyo"]["event_count"]
    return count


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("429", "throttled"),
        ("500", "error"),
        ("502", "bad_gateway"),
        ("503", "service_unavailable"),
    ],
)
def test_error_faults_use_klaviyo_shape_and_do_not_apply(
    server: SandboxServer, kind: str, code: str
) -> None:
    server.set_faults(f"{kind}=1#1")
    with klaviyo_client(server) as client:
        failed = client.post("/api/events", json=event_body(unique_id="a"))
        retried = client.post("/api/events", json=event_body(unique_id="a"))
    assert failed.status_code == int(kind)
    assert failed.headers["content-type"] == "application/vnd.api+json"
    assert failed.json()["errors"][0]["code"] == code
    assert failed.headers["x-sandbox-fault"] == kind
    if kind == "429":
        assert failed.headers["Retry-After"] == "1"
        assert "RateLimit-Limit" not in failed.headers
    assert retried.status_code == 202
    assert _event_count(server) == 1


def test_429_storm_retry_after_parameter(server: SandboxServer) -> None:
    server.set_faults("429=1:3#1")
    with klaviyo_client(server) as client:
        response = client.get("/api/lists")
    assert response.headers["Retry-After"] == "3"


def test_reset_before_drops_connection_and_applies_nothing(server: SandboxServer) -> None:
    server.set_faults("reset_before=1#1")
    with klaviyo_client(server) as client, pytest.raises(httpx.TransportError):
        client.post("/api/events", json=event_body(unique_id="r1"))
    assert _event_count(server) == 0
    (logged,) = server.requests()
    assert (logged["status"], logged["fault"]) == (None, "reset_before")


def test_reset_after_applies_then_drops_connection(server: SandboxServer) -> None:
    server.set_faults("reset_after@/api/events=1#1")
    with klaviyo_client(server) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/api/events", json=event_body(unique_id="dup-risk"))
        assert _event_count(server) == 1  # the client saw an error, yet the event exists
        retry = client.post("/api/events", json=event_body(unique_id="dup-risk"))
    assert retry.status_code == 202
    assert _event_count(server) == 1  # unique_id made the retry harmless
    stats = server.stats()
    assert stats["routes"]["POST /api/events"] == {"202": 1, "no-response:reset_after": 1}
    assert stats["faults_injected"] == {"reset_after": 1}


def test_reset_after_on_profile_import_leaves_created_profile(server: SandboxServer) -> None:
    server.set_faults("reset_after=1#1")
    body = {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}}
    with klaviyo_client(server) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/api/profile-import", json=body)
        again = client.post("/api/profile-import", json=body)
    assert again.status_code == 200  # an update: the first attempt did create it
    assert len(server.state()["klaviyo"]["profiles"]) == 1


def test_slow_delays_the_response(server: SandboxServer) -> None:
    server.set_faults("slow=1:0.3#1")
    with klaviyo_client(server) as client:
        started = time.monotonic()
        response = client.post("/api/events", json=event_body())
        elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert elapsed >= 0.3


def test_timeout_hangs_past_client_timeout_and_applies_nothing(server: SandboxServer) -> None:
    server.set_faults("timeout=1:5#1")
    with klaviyo_client(server) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/api/events", json=event_body(), timeout=0.3)
        assert time.monotonic() - started < 2
        assert client.post("/api/events", json=event_body()).status_code == 202
    assert _event_count(server) == 1


def _bulk(n: int) -> dict[str, Any]:
    events = [
        {
            "type": "event",
            "attributes": {
                "properties": {},
                "unique_id": str(i),
                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
            },
        }
        for i in range(n)
    ]
    group = {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}},
            "events": {"data": events},
        },
    }
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": [group]}},
        }
    }


def test_partial_fault_fails_event_bulk_with_item_pointers(server: SandboxServer) -> None:
    server.set_faults("partial=1:0.2#1")
    with klaviyo_client(server) as client:
        failed = client.post("/api/event-bulk-create-jobs", json=_bulk(10))
        again = client.post("/api/event-bulk-create-jobs", json=_bulk(10))
    assert failed.status_code == 400
    pointers = [e["source"]["pointer"] for e in failed.json()["errors"]]
    assert len(pointers) == 2
    assert all(
        p.startswith("/data/attributes/events-bulk-create/data/0/attributes/events/data/")
        for p in pointers
    )
    assert again.status_code == 202
    assert _event_count(server) == 10


def test_partial_fault_on_profile_bulk_import_shows_in_import_errors(server: SandboxServer) -> None:
    server.set_faults("partial@/api/profile-bulk-import-jobs=1:0.5#1")
    rows = [{"type": "profile", "attributes": {"email": f"u{i}@example.com"}} for i in range(4)]
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": rows}}}}
    with klaviyo_client(server) as client:
        job = client.post("/api/profile-bulk-import-jobs", json=body).json()["data"]
        server.advance_clock(60)
        status = client.get(f"/api/profile-bulk-import-jobs/{job['id']}").json()["data"]
        errors = client.get(f"/api/profile-bulk-import-jobs/{job['id']}/import-errors").json()[
            "data"
        ]
    assert status["attributes"]["failed_count"] == 2
    assert len(errors) == 2
    assert all(
        e["attributes"]["source"]["pointer"].startswith("/data/attributes/profiles/data/")
        for e in errors
    )
    assert len(server.state()["klaviyo"]["profiles"]) == 2


def test_introspection_routes_are_never_faulted(server: SandboxServer) -> None:
    server.set_faults("500=1")
    assert httpx.get(f"{server.url}/_sandbox/stats").status_code == 200
    assert server.state()["klaviyo"]["event_count"] == 0
