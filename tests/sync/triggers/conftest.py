"""Fixtures: a fresh state store per test, on SQLite or on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync.store.state import StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A state store in a SQLite file of its own."""
    opened = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def server_url(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL URL; skips when `tests/fixtures/postgres.py` is absent."""
    try:
        return str(request.getfixturevalue("postgres_url"))
    except pytest.FixtureLookupError:
        pytest.skip("no postgres_url fixture (tests/fixtures/postgres.py is missing)")


@pytest.fixture
def pg_store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """A state store in a fresh PostgreSQL database (skips without a server)."""
    postgres_url = server_url(request)
    name = f"triggers_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(postgres_url).set(database=name)
    opened = StateStore.open(url.render_as_string(hide_password=False))
    try:
        yield opened
    finally:
        opened.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
