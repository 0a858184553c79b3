"""Profiles: create/import/patch, 409 duplicate_profile, filters, bulk import jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import klaviyo_client


def _profile(attrs: dict[str, Any], profile_id: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "profile", "attributes": attrs, **extra}
    if profile_id:
        data["id"] = profile_id
    return {"data": data}


def _send(server: SandboxServer, method: str, path: str, body: Any = None) -> httpx.Response:
    with klaviyo_client(server) as client:
        return client.request(method, path, json=body)


def test_profile_import_creates_201_then_updates_200(server: SandboxServer) -> None:
    created = _send(server, "POST", "/api/profile-import", _profile({"email": "ann@example.com"}))
    assert created.status_code == 201
    profile_id = created.json()["data"]["id"]
    updated = _send(
        server,
        "POST",
        "/api/profile-import",
        _profile({"email": "ANN@example.com", "first_name": "Ann", "properties": {"tier": "gold"}}),
    )
    assert updated.status_code == 200
    assert updated.json()["data"]["id"] == profile_id
    assert updated.json()["data"]["attributes"]["first_name"] == "Ann"
    (stored,) = server.state()["klaviyo"]["profiles"]
    assert stored["properties"] == {"tier": "gold"}


def test_null_clears_and_omission_keeps(server: SandboxServer) -> None:
    attrs = {"email": "ann@example.com", "first_name": "Ann", "title": "CTO"}
    _send(server, "POST", "/api/profile-import", _profile(attrs))
    _send(
        server, "POST", "/api/profile-import", _profile({"email": "ann@example.com", "title": None})
    )
    (stored,) = server.state()["klaviyo"]["profiles"]
    assert stored["attributes"] == {"first_name": "Ann"}


def test_create_profile_then_409_with_duplicate_profile_id(server: SandboxServer) -> None:
    first = _send(server, "POST", "/api/profiles/", _profile({"email": "ann@example.com"}))
    assert first.status_code == 201
    again = _send(server, "POST", "/api/profiles", _profile({"email": "ann@example.com"}))
    assert again.status_code == 409
    (error,) = again.json()["errors"]
    assert error["code"] == "duplicate_profile"
    assert error["meta"]["duplicate_profile_id"] == first.json()["data"]["id"]
    assert error["source"]["pointer"] == "/data/attributes"


def test_import_with_identifiers_of_two_profiles_is_409(server: SandboxServer) -> None:
    ann = _send(server, "POST", "/api/profiles", _profile({"email": "ann@example.com"}))
    bob = _send(server, "POST", "/api/profiles", _profile({"phone_number": "+15005550006"}))
    clash = _profile({"email": "ann@example.com", "phone_number": "+15005550006"})
    response = _send(server, "POST", "/api/profile-import", clash)
    assert response.status_code == 409
    assert response.json()["errors"][0]["meta"]["duplicate_profile_id"] == bob.json()["data"]["id"]
    patch = _profile({"phone_number": "+15005550006"}, ann.json()["data"]["id"])
    response = _send(server, "PATCH", f"/api/profiles/{ann.json()['data']['id']}", patch)
    assert response.status_code == 409
    assert response.json()["errors"][0]["meta"]["duplicate_profile_id"] == bob.json()["data"]["id"]


def test_patch_updates_and_checks_id(server: SandboxServer) -> None:
    ann = _send(server, "POST", "/api/profiles", _profile({"email": "ann@example.com"}))
    pid = ann.json()["data"]["id"]
    body = _profile(
        {"last_name": "Lee"}, pid, meta={"patch_properties": {"append": {"tags": "vip"}}}
    )
    response = _send(server, "PATCH", f"/api/profiles/{pid}", body)
    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["last_name"] == "Lee"
    assert response.json()["data"]["attributes"]["properties"] == {"tags": ["vip"]}
    mismatch = _send(server, "PATCH", f"/api/profiles/{pid}", _profile({}, "OTHER"))
    assert mismatch.status_code == 409
    missing = _send(server, "PATCH", "/api/profiles/NOPE", _profile({}, "NOPE"))
    assert missing.status_code == 404


def test_get_profiles_filters_equals(server: SandboxServer) -> None:
    for email in ("a@example.com", "b@example.com"):
        _send(server, "POST", "/api/profiles", _profile({"email": email, "external_id": email[0]}))
    with klaviyo_client(server) as client:
        by_email = client.get("/api/profiles", params={"filter": 'equals(email,"b@example.com")'})
        by_ext = client.get("/api/profiles", params={"filter": 'equals(external_id,"a")'})
        everyone = client.get("/api/profiles", params={"page[size]": "1"})
        bad = client.get("/api/profiles", params={"filter": "equals(first_name,'x')"})
    assert [p["attributes"]["email"] for p in by_email.json()["data"]] == ["b@example.com"]
    assert [p["attributes"]["email"] for p in by_ext.json()["data"]] == ["a@example.com"]
    assert len(everyone.json()["data"]) == 1 and everyone.json()["links"]["next"]
    assert bad.status_code == 400


def test_invalid_email_and_phone_on_profile_writes(server: SandboxServer) -> None:
    bad = _send(server, "POST", "/api/profile-import", _profile({"email": "nope"}))
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["source"]["pointer"] == "/data/attributes/email"
    bad = _send(server, "POST", "/api/profiles", _profile({"phone_number": "12345"}))
    assert bad.json()["errors"][0]["source"]["pointer"] == "/data/attributes/phone_number"
    spaced = _send(
        server, "POST", "/api/profile-import", _profile({"phone_number": "+1 500 555 0006"})
    )
    assert spaced.status_code == 201
    assert server.state()["klaviyo"]["profiles"][0]["phone_number"] == "+15005550006"


def _bulk_job(rows: list[dict[str, Any]], list_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": [{"type": "profile", "attributes": r} for r in rows]}},
    }
    if list_id:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": data}


def test_bulk_import_progresses_and_reports_row_errors(
    sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox(time_scale=1)
    new_list = {"data": {"type": "list", "attributes": {"name": "VIP"}}}
    list_id = _send(server, "POST", "/api/lists", new_list).json()["data"]["id"]
    _send(server, "POST", "/api/profiles", _profile({"phone_number": "+15005550006"}))
    _send(server, "POST", "/api/profiles", _profile({"email": "ann@example.com"}))
    rows = [
        {"email": "a@example.com"},
        {"email": "broken"},
        {"email": "ann@example.com", "phone_number": "+15005550006"},
        {"first_name": "nobody"},
        *({"email": f"u{i}@example.com"} for i in range(26)),
    ]
    created = _send(server, "POST", "/api/profile-bulk-import-jobs", _bulk_job(rows, list_id))
    assert created.status_code == 202
    job = created.json()["data"]
    assert job["attributes"]["status"] == "queued"
    assert job["attributes"]["total_count"] == 30
    seen = [job["attributes"]["status"]]
    with klaviyo_client(server) as client:
        for _ in range(2):
            server.advance_clock(1.01)
            status = client.get(f"/api/profile-bulk-import-jobs/{job['id']}").json()
            seen.append(status["data"]["attributes"]["status"])
        assert seen == ["queued", "processing", "complete"]
        attrs = status["data"]["attributes"]
        assert (attrs["completed_count"], attrs["failed_count"]) == (27, 3)
        first = client.get(f"/api/profile-bulk-import-jobs/{job['id']}/import-errors?page[size]=2")
        rest = client.get(first.json()["links"]["next"])
    errors = first.json()["data"] + rest.json()["data"]
    assert [(e["attributes"]["code"], e["attributes"]["source"]["pointer"]) for e in errors] == [
        ("invalid", "/data/attributes/profiles/data/1/attributes/email"),
        ("duplicate_profile", "/data/attributes/profiles/data/2/attributes/phone_number"),
        ("invalid", "/data/attributes/profiles/data/3/attributes"),
    ]
    assert errors[0]["attributes"]["original_payload"] == {
        "type": "profile",
        "attributes": {"email": "broken"},
    }
    state = server.state()["klaviyo"]
    (vip,) = state["lists"]
    assert len(vip["members"]) == 27


def test_bulk_import_over_10000_is_rejected(server: SandboxServer) -> None:
    rows = [{"email": f"u{i}@example.com"} for i in range(10_001)]
    response = _send(server, "POST", "/api/profile-bulk-import-jobs", _bulk_job(rows))
    assert response.status_code == 400
    assert "at most 10000" in response.json()["errors"][0]["detail"]


def test_unknown_job_is_404(server: SandboxServer) -> None:
    assert _send(server, "GET", "/api/profile-bulk-import-jobs/NOPE").status_code == 404
