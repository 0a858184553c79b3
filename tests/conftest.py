"""Shared fixtures: a real PostgreSQL, moto's S3 server, and the ESP sandbox, all on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent

# Fixture modules register only once they exist, so a partial checkout still collects.
pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("postgres", "s3", "sandbox")
    if (_HERE / "fixtures" / f"{name}.py").exists()
]

SHARED = _HERE.parent.parent / "shared"
"""`../shared/` beside the project (specs, peer vectors); tests skip when absent."""
