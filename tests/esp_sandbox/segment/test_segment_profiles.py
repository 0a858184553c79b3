"""Segment Profiles API: auth, identifiers, paging of traits and external ids, rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer

SPACE = "spa_sandbox"
TOKEN = "segment-token"
BASE = f"/v1/spaces/{SPACE}/collections/users/profiles"


@pytest.fixture(scope="module")
def seg_server() -> Iterator[SandboxServer]:
    """time_scale 0.1 stretches the 1 s rate window to 10 s so bursts are deterministic."""
    config = SandboxConfig(segment_access_tokens={TOKEN}, time_scale=0.1, seed=3)
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def seg(seg_server: SandboxServer) -> Iterator[httpx.Client]:
    seg_server.reset()
    with httpx.Client(base_url=seg_server.segment_url, auth=(TOKEN, ""), timeout=10) as client:
        yield client


def _seed(server: SandboxServer, *profiles: dict[str, Any], space: str = SPACE) -> list[str]:
    response = httpx.post(
        server.url + "/_sandbox/segment/profiles",
        json={"space_id": space, "profiles": list(profiles)},
    )
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["segment_ids"]
    return ids


ANN = {
    "external_ids": [
        {"type": "user_id", "id": "u-1"},
        {"type": "email", "id": "ann@example.com"},
        {"type": "anonymous_id", "id": "anon-1"},
    ],
    "traits": {f"t{i:02d}": i for i in range(25)} | {"first_name": "Ann"},
    "audiences": {"big_spender": True},
    "computed_traits": {"orders_30d": 3},
}


@pytest.mark.parametrize(
    "identifier", ["user_id:u-1", "email:ann@example.com", "anonymous_id:anon-1"]
)
def test_traits_by_any_identifier(
    seg: httpx.Client, seg_server: SandboxServer, identifier: str
) -> None:
    _seed(seg_server, ANN)
    response = seg.get(f"{BASE}/{identifier}/traits", params={"include": "first_name"})
    assert response.status_code == 200
    assert response.headers["request-id"]
    assert response.json()["traits"] == {"first_name": "Ann"}


def test_traits_paging_follows_next_key(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(seg_server, ANN)
    seen: dict[str, Any] = {}
    params: dict[str, Any] = {}
    pages = 0
    while True:
        body = seg.get(f"{BASE}/user_id:u-1/traits", params=params).json()
        pages += 1
        assert len(body["traits"]) <= 10
        assert not set(body["traits"]) & set(seen)
        seen.update(body["traits"])
        cursor = body["cursor"]
        assert cursor["url"] == f"{BASE}/user_id:u-1/traits"
        assert cursor["limit"] == 10
        if not cursor["has_more"]:
            assert cursor["next"] == ""
            break
        params = {"next": cursor["next"]}
    assert pages == 3
    assert len(seen) == 28
    assert list(seen) == sorted(seen)


def test_traits_limit_class_and_verbose(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(seg_server, ANN)
    url = f"{BASE}/user_id:u-1/traits"
    assert len(seg.get(url, params={"limit": 200}).json()["traits"]) == 28
    for bad in ("0", "201", "ten"):
        response = seg.get(url, params={"limit": bad})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request_error"
    assert seg.get(url, params={"class": "audience"}).json()["traits"] == {"big_spender": True}
    assert seg.get(url, params={"class": "computed_trait"}).json()["traits"] == {"orders_30d": 3}
    verbose = seg.get(url, params={"include": "first_name", "verbose": "true"}).json()
    assert verbose["traits"]["first_name"]["value"] == "Ann"
    assert {"source_id", "updated_at"} <= set(verbose["traits"]["first_name"])


def test_external_ids_paging(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(seg_server, ANN)
    url = f"{BASE}/email:ann@example.com/external_ids"
    first = seg.get(url, params={"limit": 2}).json()
    assert [x["type"] for x in first["data"]] == ["user_id", "email"]
    assert first["cursor"]["has_more"] is True
    assert first["cursor"]["next"].startswith("map_")
    rest = seg.get(url, params={"limit": 2, "next": first["cursor"]["next"]}).json()
    assert [x["id"] for x in rest["data"]] == ["anon-1"]
    assert rest["cursor"] == {"url": url, "has_more": False, "next": ""}
    only = seg.get(url, params={"include": "anonymous_id"}).json()["data"]
    assert [x["id"] for x in only] == ["anon-1"]
    assert {"collection", "id", "type", "created_at", "encoding"} <= set(only[0])
    assert seg.get(url, params={"next": "map_bogus"}).status_code == 400
    assert seg.get(url, params={"limit": 101}).status_code == 400


def test_metadata(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(seg_server, ANN)
    meta = seg.get(f"{BASE}/user_id:u-1/metadata").json()["metadata"]
    assert {"created_at", "updated_at", "first_message_id", "last_source_id"} <= set(meta)


def test_unknown_profile_and_bad_identifier(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(seg_server, ANN)
    missing = seg.get(f"{BASE}/user_id:nobody/traits")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Profile was not found."}}
    other_space = seg.get("/v1/spaces/other/collections/users/profiles/user_id:u-1/traits")
    assert other_space.status_code == 404
    for bad in ("u-1", "USER_ID:u-1", "user_id:"):
        response = seg.get(f"{BASE}/{bad}/traits")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"


def test_phone_identifier_with_encoded_plus(seg: httpx.Client, seg_server: SandboxServer) -> None:
    _seed(
        seg_server, {"external_ids": [{"type": "phone", "id": "+15555550123"}], "traits": {"a": 1}}
    )
    assert seg.get(f"{BASE}/phone:%2B15555550123/traits").json()["traits"] == {"a": 1}


def test_authentication(seg_server: SandboxServer) -> None:
    url = seg_server.segment_url + f"{BASE}/user_id:u-1/traits"
    for auth in (None, ("wrong-token", ""), ("", "")):
        response = httpx.get(url, auth=auth)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_error"
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 401


def test_seeding_merges_profiles_sharing_an_identifier(
    seg: httpx.Client, seg_server: SandboxServer
) -> None:
    first = _seed(
        seg_server, {"external_ids": [{"type": "user_id", "id": "u-9"}], "traits": {"a": 1}}
    )
    second = _seed(
        seg_server,
        {
            "external_ids": [
                {"type": "user_id", "id": "u-9"},
                {"type": "email", "id": "z@example.com"},
            ],
            "traits": {"b": 2},
        },
    )
    assert first == second
    traits = seg.get(f"{BASE}/email:z@example.com/traits").json()["traits"]
    assert traits == {"a": 1, "b": 2}
    state = seg_server.state()["segment"]["spaces"][SPACE]
    assert len(state) == 1
    bad = httpx.post(seg_server.url + "/_sandbox/segment/profiles", json={"space_id": SPACE})
    assert bad.status_code == 400
    no_ids = httpx.post(
        seg_server.url + "/_sandbox/segment/profiles",
        json={"space_id": SPACE, "profiles": [{"traits": {}}]},
    )
    assert no_ids.status_code == 400


def test_rate_limit_is_100_per_second_per_space(
    seg: httpx.Client, seg_server: SandboxServer
) -> None:
    _seed(seg_server, ANN)
    _seed(seg_server, ANN, space="spa_other")
    statuses = [seg.get(f"{BASE}/user_id:u-1/metadata").status_code for _ in range(101)]
    assert statuses[:100] == [200] * 100
    assert statuses[100] == 429
    limited = seg.get(f"{BASE}/user_id:u-1/metadata")
    assert limited.json()["error"]["code"] == "rate_limit_error"
    other = seg.get("/v1/spaces/spa_other/collections/users/profiles/user_id:u-1/metadata")
    assert other.status_code == 200
    seg_server.advance_clock(10.5)
    assert seg.get(f"{BASE}/user_id:u-1/metadata").status_code == 200
    assert seg_server.state()["segment"]["rate_limited"] == 2
