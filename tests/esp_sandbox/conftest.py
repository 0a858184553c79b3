"""Fixtures for sandbox tests: `sandbox` factory (from esp_sandbox.testing) and a shared server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import sandbox

__all__ = ["sandbox"]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[SandboxServer]:
    """One sandbox per test module (time_scale 60 so rate windows are short)."""
    with SandboxServer(SandboxConfig(time_scale=60)) as server:
        yield server


@pytest.fixture
def server(shared_server: SandboxServer) -> SandboxServer:
    """The module's sandbox, reset (state, log, faults) for this test."""
    shared_server.set_faults(None)
    shared_server.reset()
    return shared_server
