"""Fixtures of the real-time path: a state store and the ingest app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sync.ingest.app import create_app
from sync.ingest.metrics import IngestMetrics
from sync.ingest.settings import IngestSettings
from sync.store.state import StateStore
from tests.sync.ingest.helpers import WEBHOOK_SECRET, WRITE_KEY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings(write_keys=[WRITE_KEY], webhook_secret=WEBHOOK_SECRET)


@pytest.fixture
def metrics() -> IngestMetrics:
    return IngestMetrics()


@pytest.fixture
def app(settings: IngestSettings, store: StateStore, metrics: IngestMetrics) -> FastAPI:
    return create_app(settings, store, metrics=metrics)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ingest", auth=(WRITE_KEY, "")
    ) as c:
        yield c
