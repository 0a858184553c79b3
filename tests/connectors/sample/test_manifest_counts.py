"""The manifest counts every kind of planted fact, 0 when a small dataset drew none."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sample import generate
from connectors.sample.sessions import KINDS


@pytest.mark.parametrize("events", [1000, 5000])
def test_counts_list_every_kind(tmp_path: Path, events: int) -> None:
    manifest = generate(tmp_path, events=events, seed=42)
    assert sorted(manifest["counts"]) == sorted(KINDS)
    assert "junk_identifiers" in manifest["planted"]
    assert all(isinstance(n, int) and n >= 0 for n in manifest["counts"].values())


def test_junk_identifiers_count_is_zero_when_none_was_drawn(tmp_path: Path) -> None:
    # Seed 42 at 1000 events draws no random junk identity (the planted story is separate).
    assert generate(tmp_path, events=1000, seed=42)["counts"]["junk_identifiers"] == 0
