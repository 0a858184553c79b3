"""Pytest helpers: a `sandbox` fixture factory and Klaviyo request helpers.

Use in a conftest::

    from esp_sandbox.testing import sandbox  # noqa: F401  (re-exported fixture)

    def test_x(sandbox):
        server = sandbox(time_scale=60, faults="429=0.1")
        ...

Plain `with SandboxServer(SandboxConfig(...)) as server:` works just as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import PLAIN_HTTP, SandboxServer

KLAVIYO_TEST_KEY = "pk_sandbox_test_key"
KLAVIYO_REVISION = "2026-07-15"


def klaviyo_headers(
    key: str = KLAVIYO_TEST_KEY, revision: str = KLAVIYO_REVISION, **extra: str
) -> dict[str, str]:
    """Headers a well-behaved Klaviyo client sends."""
    return {
        "Authorization": f"Klaviyo-API-Key {key}",
        "revision": revision,
        "Accept": "application/vnd.api+json",
        "Content-Type": "application/vnd.api+json",
        **extra,
    }


def klaviyo_client(server: SandboxServer, **headers: str) -> httpx.Client:
    """An httpx client pointed at the sandbox's Klaviyo API with good headers."""
    return httpx.Client(
        base_url=server.klaviyo_url,
        headers=klaviyo_headers(**headers),
        timeout=10,
        verify=PLAIN_HTTP,
    )


def event_body(
    metric: str = "Viewed Product",
    email: str | None = "ann@example.com",
    unique_id: str | None = None,
    time: str | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    """A minimal valid `POST /api/events` body."""
    profile: dict[str, Any] = {"email": email} if email else {}
    body: dict[str, Any] = {
        "properties": attrs.pop("properties", {}),
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": {**profile, **attrs}}},
    }
    if unique_id is not None:
        body["unique_id"] = unique_id
    if time is not None:
        body["time"] = time
    return {"data": {"type": "event", "attributes": body}}


@pytest.fixture
def sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Factory fixture: `sandbox(**SandboxConfig fields)` starts a server, stopped at teardown."""
    started: list[SandboxServer] = []

    def start(**config: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
