"""`run -o json` that stops (fatal, exit 3; busy, exit 5) still prints one JSON document.

The success shape is a list of run reports; a stopped sync is one more entry with its
`status`, `exit_code` and redacted `error`, after the reports of the syncs that completed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import SourceUnavailable
from sync import engine as engine_module
from sync.cli import app
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp, track

runner = CliRunner()
SECRET = "pk_json_failure_do_not_print_99"


class DownSource(LinesSource):
    """A source whose server refuses the connection, naming the URL and the key it used."""

    def read(self, bookmark: Any, *, batch_size: int) -> Iterator[Any]:
        raise SourceUnavailable(
            f"source {self.name}: postgresql://loader:hunter2-pw@db.internal:5432/dw "
            f"refused key {SECRET}"
        )
        yield  # a generator, as sources are


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "events.jsonl"
    data.write_bytes(track(1) + b"\n")

    def build_source(name: str, settings: Any, store: Any = None) -> LinesSource:
        return (DownSource if name == "down" else LinesSource)(name, data)

    monkeypatch.setattr(engine_module, "build_source", build_source)
    monkeypatch.setattr(
        engine_module,
        "build_destination",
        lambda name, s, t=None: LoggingEsp(name, tmp_path / "esp.log"),
    )
    monkeypatch.setenv("ESPB_JSON_FAILURE_KEY", SECRET)
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.events]
type = "segment"
path = "{tmp_path}"
[sources.down]
type = "segment"
path = "{tmp_path}"
[destinations.esp]
type = "klaviyo"
api_key = "${{ESPB_JSON_FAILURE_KEY}}"
[syncs.main]
source = "events"
destinations = ["esp"]
[syncs.broken]
source = "down"
destinations = ["esp"]
"""
    )
    return path


def _run(config_file: Path, *syncs: str) -> Any:
    args = ["run", "-c", str(config_file), "-o", "json"]
    for name in syncs:
        args += ["--sync", name]
    return runner.invoke(app, args)


def test_a_fatal_error_prints_the_completed_reports_and_the_redacted_reason(
    config_file: Path,
) -> None:
    result = _run(config_file, "main", "broken")
    assert result.exit_code == 3, result.output
    completed, failed = json.loads(result.stdout)
    assert completed["sync"] == "main" and completed["status"] == "completed"
    assert failed == {
        "sync": "broken",
        "status": "failed",
        "exit_code": 3,
        "error": "source down: db.internal:5432/dw refused key [secure]",  # as display_url shows it
    }
    assert SECRET not in result.stdout and "hunter2-pw" not in result.stdout
    assert "fatal" in result.stderr and "source down" in result.stderr  # stderr as before


def test_a_busy_sync_prints_status_busy_and_exit_code_5(config_file: Path) -> None:
    store = StateStore.open(f"sqlite:///{config_file.parent}/state.db")
    try:
        assert store.acquire_lock("sync:main", "otherhost:1:abcd", timedelta(minutes=10))
        result = _run(config_file, "main")
    finally:
        store.close()
    assert result.exit_code == 5, result.output
    assert json.loads(result.stdout) == [
        {
            "sync": "main",
            "status": "busy",
            "exit_code": 5,
            "error": "sync 'main' is already running elsewhere",
        }
    ]
    assert "busy" in result.stderr


def test_an_unreachable_state_store_prints_a_failed_entry(tmp_path: Path) -> None:
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "postgresql+psycopg://loader:hunter2-pw@127.0.0.1:1/state?connect_timeout=2"
[sources.events]
type = "segment"
path = "{tmp_path}"
[destinations.esp]
type = "klaviyo"
api_key = "pk_x_123456"
[syncs.main]
source = "events"
destinations = ["esp"]
"""
    )
    result = runner.invoke(app, ["run", "-c", str(path), "-o", "json"])
    assert result.exit_code == 3, result.output
    [failed] = json.loads(result.stdout)
    assert failed["sync"] is None and failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["error"].startswith("state store unreachable (127.0.0.1:1/state")
    assert "hunter2-pw" not in result.stdout


def test_text_output_of_a_stopped_run_is_unchanged(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file), "--sync", "broken"])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "fatal" in result.stderr
