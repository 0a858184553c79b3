"""Sync locks expire on the database's clock, not on the clock of the host asking.

Two hosts sharing a PostgreSQL state store may disagree about the time; the lock must
mean the same to both. The host's clock is `sync.store.state._now`: set far off here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync.store import schema
from sync.store import state as state_module
from sync.store.state import StateStore, as_utc

TTL = timedelta(minutes=5)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = StateStore.open(url)
    request.addfinalizer(opened.close)
    with opened.engine.begin() as conn:  # the PostgreSQL server lives for the session
        conn.execute(sa.delete(schema.locks).where(schema.locks.c.name == "sync:skew"))
    return opened


def _host_clock(monkeypatch: pytest.MonkeyPatch, skew: timedelta) -> None:
    monkeypatch.setattr(state_module, "_now", lambda: datetime.now(UTC) + skew)


def test_a_host_whose_clock_runs_ahead_does_not_take_a_live_lock(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.acquire_lock("sync:skew", "host-a:1:x", TTL)
    _host_clock(monkeypatch, timedelta(days=1))
    assert not store.acquire_lock("sync:skew", "host-b:1:y", TTL)


def test_a_host_whose_clock_runs_behind_holds_its_lock_for_the_whole_ttl(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as behind:
        _host_clock(behind, -timedelta(days=1))
        assert store.acquire_lock("sync:skew", "host-a:1:x", TTL)
        assert store.refresh_lock("sync:skew", "host-a:1:x", TTL)
    assert not store.acquire_lock("sync:skew", "host-b:1:y", TTL)


def test_expiry_is_stored_as_a_time_ttl_ahead_of_the_database_clock(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host_clock(monkeypatch, timedelta(days=365))
    assert store.acquire_lock("sync:skew", "host-a:1:x", TTL)
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(schema.locks.c.expires_at).where(schema.locks.c.name == "sync:skew")
        ).scalar_one()
    expires = as_utc(stored)
    assert isinstance(expires, datetime)
    assert abs(expires - (datetime.now(UTC) + TTL)) < timedelta(seconds=30)
