"""Fixtures for the Mailchimp half: a real sandbox on 127.0.0.1 and an authenticated client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import API_KEY


@pytest.fixture(scope="module")
def mc_server() -> Iterator[SandboxServer]:
    """One sandbox per module at real time (time_scale 1); tests advance its clock."""
    with SandboxServer(SandboxConfig(seed=11)) as server:
        yield server


@pytest.fixture
def mc(mc_server: SandboxServer) -> Iterator[httpx.Client]:
    """A client on `<sandbox>/3.0` with a valid key, after a full sandbox reset."""
    mc_server.set_faults(None)
    mc_server.reset()
    auth = ("anystring", API_KEY)
    with httpx.Client(base_url=mc_server.mailchimp_url, auth=auth, timeout=10) as client:
        yield client
