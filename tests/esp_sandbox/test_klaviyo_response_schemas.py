"""Every sandbox response body conforms to the official spec's response schema."""

from __future__ import annotations

from typing import Any

import pytest

from esp_sandbox.klaviyo.spec import shared_spec
from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import event_body, klaviyo_client


@pytest.fixture(autouse=True)
def _needs_spec() -> None:
    if not shared_spec().available:
        pytest.skip(f"Klaviyo spec absent: {shared_spec().status()}")


def _check(template: str, method: str, status: int, body: Any) -> None:
    issues = shared_spec().check_response(template, method, status, body)
    assert issues == [], f"{method} {template} {status}: {issues[:3]}"


def test_success_and_error_responses_match_spec(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        made = client.post(
            "/api/lists", json={"data": {"type": "list", "attributes": {"name": "L"}}}
        )
        _check("/api/lists", "post", 201, made.json())
        list_id = made.json()["data"]["id"]
        _check("/api/lists", "get", 200, client.get("/api/lists").json())
        _check("/api/lists/{id}", "get", 200, client.get(f"/api/lists/{list_id}").json())

        created = client.post(
            "/api/profiles", json={"data": {"type": "profile", "attributes": {"email": "a@x.io"}}}
        )
        _check("/api/profiles", "post", 201, created.json())
        pid = created.json()["data"]["id"]
        upsert = {"data": {"type": "profile", "attributes": {"email": "a@x.io", "first_name": "A"}}}
        imported = client.post("/api/profile-import", json=upsert)
        _check("/api/profile-import", "post", 200, imported.json())
        patch = {"data": {"type": "profile", "id": pid, "attributes": {"last_name": "B"}}}
        _check(
            "/api/profiles/{id}",
            "patch",
            200,
            client.patch(f"/api/profiles/{pid}", json=patch).json(),
        )
        _check("/api/profiles/{id}", "get", 200, client.get(f"/api/profiles/{pid}").json())
        _check("/api/profiles", "get", 200, client.get("/api/profiles").json())

        rows = [{"type": "profile", "attributes": {"email": e}} for e in ("b@x.io", "bad")]
        job = client.post(
            "/api/profile-bulk-import-jobs",
            json={
                "data": {
                    "type": "profile-bulk-import-job",
                    "attributes": {"profiles": {"data": rows}},
                }
            },
        )
        _check("/api/profile-bulk-import-jobs", "post", 202, job.json())
        job_id = job.json()["data"]["id"]
        server.advance_clock(60)
        status = client.get(f"/api/profile-bulk-import-jobs/{job_id}")
        _check("/api/profile-bulk-import-jobs/{job_id}", "get", 200, status.json())
        errors = client.get(f"/api/profile-bulk-import-jobs/{job_id}/import-errors")
        assert len(errors.json()["data"]) == 1
        _check("/api/profile-bulk-import-jobs/{id}/import-errors", "get", 200, errors.json())

        _check("/api/accounts", "get", 200, client.get("/api/accounts").json())
        _check("/api/templates", "get", 200, client.get("/api/templates").json())

        bad = client.post("/api/events", json=event_body(email="nope"))
        _check("/api/events", "post", 400, bad.json())
        conflict = client.post(
            "/api/profiles", json={"data": {"type": "profile", "attributes": {"email": "a@x.io"}}}
        )
        _check("/api/profiles", "post", 409, conflict.json())
