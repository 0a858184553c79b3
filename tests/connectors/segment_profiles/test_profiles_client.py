"""The Profiles API client against the sandbox's Segment space, and against a mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectors.http import RetryPolicy
from connectors.segment_profiles import ExternalId, ProfilesClient
from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from mapping.identity import ProfilesApiSettings
from sync.identity import IdentityResolver
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg

SPACE = "spa_test"
TOKEN = "profiles-token"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(segment_access_tokens={TOKEN}, seed=5)
    with SandboxServer(config) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    server.reset()
    return server


def seed(server: SandboxServer, *profiles: dict[str, object]) -> None:
    response = httpx.post(
        server.url + "/_sandbox/segment/profiles",
        json={"space_id": SPACE, "profiles": list(profiles)},
    )
    assert response.status_code == 201, response.text


def settings(url: str, **extra: object) -> ProfilesApiSettings:
    return ProfilesApiSettings.model_validate(
        {"space_id": SPACE, "access_token": TOKEN, "base_url": url, **extra}
    )


ANN = {
    "external_ids": [
        {"type": "anonymous_id", "id": "anon-1"},
        {"type": "user_id", "id": "u-1"},
        {"type": "email", "id": "ann@example.com"},
        {"type": "phone", "id": "+14155552671"},
        {"type": "ios.id", "id": "IDFA-1"},
    ],
    "traits": {f"t{i:02d}": i for i in range(12)} | {"first_name": "Ann"},
}


async def test_external_ids_and_traits_page_through(sandbox: SandboxServer) -> None:
    seed(sandbox, ANN)
    async with ProfilesClient(settings(sandbox.segment_url, page_limit=2)) as client:
        ids = await client.external_ids("phone", "+14155552671")
        traits = await client.traits("user_id", "u-1")
        assert await client.external_ids("user_id", "nobody") is None
        assert client.requests == 3 + 7 + 1  # 5 ids by 2, 13 traits by 2, one 404
    assert ids is not None
    assert [(x.type, x.id) for x in ids] == [
        ("anonymous_id", "anon-1"),
        ("user_id", "u-1"),
        ("email", "ann@example.com"),
        ("phone", "+14155552671"),
        ("ios.id", "IDFA-1"),
    ]
    assert traits is not None
    assert traits["first_name"] == "Ann"
    assert len(traits) == 13


async def test_wrong_token_is_an_auth_error(sandbox: SandboxServer) -> None:
    from connectors.errors import AuthFailed

    bad = ProfilesApiSettings(space_id=SPACE, access_token="nope", base_url=sandbox.segment_url)
    async with ProfilesClient(bad) as client:
        with pytest.raises(AuthFailed):
            await client.traits("user_id", "u-1")


async def test_resolver_enriches_anonymous_customers(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    seed(sandbox, ANN)
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    resolver = IdentityResolver(store)
    resolution = resolver.resolve([msg(1, anon="anon-1"), msg(2, anon="anon-2")])
    async with ProfilesClient(settings(sandbox.segment_url)) as client:
        gained = await resolver.enrich(resolution, client)
    assert gained == 1
    ann = resolution.customers["m0001"]
    assert ann.customer_id == cid("user_id", "u-1")
    assert ann.identifiers == {
        "user_id": ["u-1"],
        "email": ["ann@example.com"],
        "phone": ["+14155552671"],
        "anonymous_id": ["anon-1"],
    }
    assert resolution.merges == {cid("anonymous_id", "anon-1"): cid("user_id", "u-1")}
    assert resolution.customers["m0002"].customer_id == cid("anonymous_id", "anon-2")
    store.close()


async def test_429_is_retried_and_plus_is_encoded() -> None:
    seen: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                429,
                headers={"Retry-After": "0"},
                json={"error": {"code": "rate_limit_error", "message": "slow down"}},
            )
        return httpx.Response(
            200,
            json={
                "data": [{"type": "user_id", "id": "u1", "created_at": "2026-01-01T00:00:00Z"}],
                "cursor": {"url": "", "has_more": False, "next": ""},
            },
        )

    client = ProfilesClient(
        settings("https://profiles.test"),
        transport=httpx.MockTransport(respond),
        policy=RetryPolicy(max_attempts=3, initial=0.01, max_delay=0.05),
    )
    ids = await client.external_ids("phone", "+14155552671")
    await client.aclose()
    assert ids == [ExternalId("user_id", "u1", "2026-01-01T00:00:00Z")]
    assert len(seen) == 2
    assert seen[1].url.raw_path.decode() == (
        f"/v1/spaces/{SPACE}/collections/users/profiles/phone:%2B14155552671/external_ids?limit=100"
    )
    assert seen[1].headers["Authorization"].startswith("Basic ")
