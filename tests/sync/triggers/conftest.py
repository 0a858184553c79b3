"""Fixtures: a fresh SQLite state store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.store.state import StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A state store in a SQLite file of its own."""
    opened = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()
