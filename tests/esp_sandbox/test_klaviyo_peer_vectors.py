"""Replay the peer projects' Klaviyo requests (RudderStack, Segment Actions) against the sandbox.

Vectors are read in place from ../shared/peer-vectors (see ../shared/notes/peer-vectors.md).
Requests pinned to revision 2024-10-15 or newer must be accepted; legacy
revisions (2023-02-22) must be refused as unsupported, and their legacy body
shapes must also fail schema validation under a current revision.
Secrets in the vectors are masked, so our own test key is sent instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import PLAIN_HTTP, SandboxServer
from esp_sandbox.testing import KLAVIYO_TEST_KEY, klaviyo_client

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "peer-vectors"
RUDDER = VECTORS / "rudder-klaviyo.json"
SEGMENT = VECTORS / "segment-actions-klaviyo.json"
CURRENT = "2026-07-15"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        pytest.skip(f"peer vectors not found at {path} (clone outside the shared setup)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _rudder_requests() -> list[Any]:
    if not RUDDER.exists():
        return []
    cases = json.loads(RUDDER.read_text())["cases"]
    out = []
    for case in cases:
        for exp in case["expected"]:
            for index, request in enumerate(exp.get("requests") or []):
                out.append((case["id"], index, request))
    return out


def _segment_cases() -> list[Any]:
    if not SEGMENT.exists():
        return []
    return [c for c in json.loads(SEGMENT.read_text())["cases"] if c.get("expected")]


@pytest.fixture(scope="module")
def vector_server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(time_scale=600)) as server:
        yield server


@pytest.fixture
def fresh(vector_server: SandboxServer) -> SandboxServer:
    vector_server.reset()
    return vector_server


def _path(request: dict[str, Any]) -> str:
    url = request.get("endpoint") or request.get("url") or ""
    return urlsplit(url).path


def _seed_lists(server: SandboxServer, body: Any) -> None:
    """Create the lists a vector refers to (they exist in the peer's Klaviyo account)."""
    relationships = (
        (body.get("data") or {}).get("relationships") or {} if isinstance(body, dict) else {}
    )
    refs = [(relationships.get("list") or {}).get("data")]
    refs += (relationships.get("lists") or {}).get("data") or []
    for ref in refs:
        if ref and ref.get("id"):
            httpx.post(
                f"{server.url}/_sandbox/klaviyo/lists", json={"id": ref["id"]}
            ).raise_for_status()


def _seed_profile(server: SandboxServer, request: dict[str, Any]) -> None:
    """An upsert naming a profile id needs that profile to exist (it does in the peer's account)."""
    profile_id = (request["json"].get("data") or {}).get("id")
    if _path(request) == "/api/profile-import" and profile_id:
        seeded = httpx.post(
            f"{server.url}/_sandbox/klaviyo/profiles", json={"id": profile_id}, verify=PLAIN_HTTP
        )
        seeded.raise_for_status()


def _send(
    server: SandboxServer, request: dict[str, Any], revision: str, path: str | None = None
) -> Any:
    _seed_lists(server, request["json"])
    _seed_profile(server, request)
    with klaviyo_client(server, revision=revision) as client:
        return client.request(request["method"], path or _path(request), json=request["json"])


@pytest.mark.parametrize(
    ("case_id", "index", "request_"),
    _rudder_requests()
    or [pytest.param("", 0, {}, marks=pytest.mark.skip(reason=f"{RUDDER} absent"))],
)
def test_rudder_request(
    fresh: SandboxServer, case_id: str, index: int, request_: dict[str, Any]
) -> None:
    headers = request_.get("headers") or {}
    revision = str(headers.get("revision", ""))
    if not _path(request_):
        # klaviyo_bulk_upload: rudder-server uploads this body itself; the vector has no revision.
        response = _send(fresh, request_, CURRENT, "/api/profile-bulk-import-jobs")
        assert response.status_code == 202, response.text
        return
    assert headers.get("Authorization", "").startswith("Klaviyo-API-Key ")
    response = _send(fresh, request_, revision)
    if revision >= "2024-10-15":
        assert response.status_code in (200, 201, 202, 204), (case_id, response.text)
        return
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["code"], error["source"]) == ("invalid_revision", {"parameter": "revision"})
    check = request_.get("schema_check_klaviyo_2026_07_15", "ok")
    if check != "ok":
        legacy = _send(fresh, request_, CURRENT)
        assert legacy.status_code == 400
        assert {e["code"] for e in legacy.json()["errors"]} == {"invalid"}
        expected = "/" + check.removeprefix("fail: ").split(":")[0]
        assert any(e["source"]["pointer"].startswith(expected) for e in legacy.json()["errors"])


@pytest.mark.parametrize(
    "case",
    _segment_cases() or [pytest.param({}, marks=pytest.mark.skip(reason=f"{SEGMENT} absent"))],
    ids=lambda c: c.get("id", "none"),
)
def test_segment_actions_case(fresh: SandboxServer, case: dict[str, Any]) -> None:
    revision = _load(SEGMENT)["klaviyo_revision"]
    assert revision >= "2024-10-15"
    duplicate_id: str | None = None
    for request in case["expected"]:
        if "json" not in request:
            continue  # shape-only entries (fan-out, batch partial failure) carry no body
        path = _path(request)
        body = request["json"]
        if request.get("reply_status") == 409:
            _send(fresh, request, revision)  # make the profile exist, so the replay conflicts
            response = _send(fresh, request, revision)
            assert response.status_code == 409
            duplicate_id = response.json()["errors"][0]["meta"]["duplicate_profile_id"]
            continue
        if duplicate_id and request["method"] == "PATCH":
            path = path.rsplit("/", 1)[0] + f"/{duplicate_id}"
            body = {"data": {**body["data"], "id": duplicate_id}}
        _seed_lists(fresh, body)
        with klaviyo_client(fresh, revision=revision) as client:
            response = client.request(request["method"], path, json=body)
        assert response.status_code in (200, 201, 202, 204), (case["id"], response.text)


def test_vector_headers_are_what_the_sandbox_expects() -> None:
    data = _load(SEGMENT)
    assert data["headers"]["Content-Type"] == "application/json"
    assert KLAVIYO_TEST_KEY.startswith("pk_")
