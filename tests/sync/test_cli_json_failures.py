"""`run -o json` and `retry -o json` that stop (unexpected error, exit 1; config error, 2;
fatal, 3; busy, 5) still print one JSON document.

The success shape is a list of run reports; a stopped sync is one more entry with its
`status`, `exit_code` and redacted `error`, after the reports of the syncs that completed.
`retry` prints that entry alone, in place of its single report.
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


# Exit 2 (config) and 1 (unexpected) print one document too: before, stdout was empty, and
# a script piping `-o json` into `jq` got nothing to parse.


def _entry(sync: str | None, code: int, error: str) -> dict[str, Any]:
    return {"sync": sync, "status": "failed", "exit_code": code, "error": error}


def test_an_invalid_config_file_prints_a_config_error_entry(tmp_path: Path) -> None:
    path = tmp_path / "espbridge.toml"
    path.write_text('[state]\nurl = "sqlite:///x.db"\n[syncs.main]\nsource = 7\n')
    for command in (["run"], ["retry", "--sync", "main"]):
        result = runner.invoke(app, [*command, "-c", str(path), "-o", "json"])
        assert result.exit_code == 2, result.output
        document = json.loads(result.stdout)
        entry = document[0] if command == ["run"] else document
        assert entry["sync"] is None and entry["exit_code"] == 2
        assert entry["error"].startswith(f"{path}: invalid config:")
        assert "syncs.main.source" in entry["error"]
        assert "config error" in result.stderr and "syncs.main.source" in result.stderr


def test_a_missing_config_file_prints_a_config_error_entry(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    result = runner.invoke(app, ["run", "-c", str(path), "-o", "json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == [_entry(None, 2, f"{path}: no such config file")]


def test_an_unknown_sync_on_the_command_line_prints_a_config_error_entry(
    config_file: Path,
) -> None:
    result = _run(config_file, "main", "ghost")
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout) == [_entry(None, 2, "no sync named ghost")]
    assert "config error" in result.stderr and "ghost" in result.stderr

    result = runner.invoke(app, ["retry", "-c", str(config_file), "-s", "ghost", "-o", "json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout) == _entry(
        None, 2, "--sync must name a configured sync, got 'ghost'"
    )


def test_dry_run_json_without_a_file_prints_the_usage_error_as_an_entry(
    config_file: Path,
) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file), "-o", "json", "--dry-run"])
    assert result.exit_code == 2
    [entry] = json.loads(result.stdout)
    assert entry["exit_code"] == 2 and "needs --dry-run-file" in entry["error"]
    assert "usage error" in result.stderr


def test_a_config_error_during_a_run_follows_the_completed_reports(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.config import ConfigError

    def build_source(name: str, settings: Any, store: Any = None) -> LinesSource:
        if name == "down":
            raise ConfigError(f"sources.down: postgresql://loader:hunter2-pw@db/dw key {SECRET}")
        return LinesSource(name, config_file.parent / "events.jsonl")

    monkeypatch.setattr(engine_module, "build_source", build_source)
    result = _run(config_file, "main", "broken")
    assert result.exit_code == 2, result.output
    completed, failed = json.loads(result.stdout)
    assert completed["sync"] == "main" and completed["status"] == "completed"
    assert failed == _entry("broken", 2, "sources.down: db/dw key [secure]")
    assert SECRET not in result.output and "hunter2-pw" not in result.output
    assert "config error" in result.stderr


class CrashingSource(LinesSource):
    """A bug: an error nothing expects, whose message holds a secret and a URL's password."""

    def read(self, bookmark: Any, *, batch_size: int) -> Iterator[Any]:
        raise RuntimeError(f"boom at postgresql://loader:hunter2-pw@db/dw with {SECRET}")
        yield


def test_an_unexpected_error_prints_a_redacted_entry_and_exits_1(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build_source(name: str, settings: Any, store: Any = None) -> LinesSource:
        data = config_file.parent / "events.jsonl"
        return (CrashingSource if name == "down" else LinesSource)(name, data)

    monkeypatch.setattr(engine_module, "build_source", build_source)
    result = _run(config_file, "main", "broken")
    assert result.exit_code == 1, result.output
    completed, failed = json.loads(result.stdout)
    assert completed["sync"] == "main"
    assert failed == _entry("broken", 1, "RuntimeError: boom at db/dw with [secure]")
    assert "Traceback" in result.stderr and "RuntimeError: boom at db/dw" in result.stderr
    assert SECRET not in result.output and "hunter2-pw" not in result.output

    text = runner.invoke(app, ["run", "-c", str(config_file), "--sync", "broken"])
    assert text.exit_code == 1 and text.stdout == ""
    assert "Traceback" in text.stderr and SECRET not in text.stderr


def test_retry_prints_one_entry_for_an_unreachable_store_and_an_unexpected_error(
    tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = tmp_path / "down.toml"
    down.write_text(
        config_file.read_text().replace(
            f'url = "sqlite:///{tmp_path}/state.db"',
            'url = "postgresql+psycopg://loader:hunter2-pw@127.0.0.1:1/state?connect_timeout=2"',
        )
    )
    result = runner.invoke(app, ["retry", "-c", str(down), "-s", "main", "-o", "json"])
    assert result.exit_code == 3, result.output
    failed = json.loads(result.stdout)
    assert failed["sync"] is None and failed["exit_code"] == 3
    assert failed["error"].startswith("state store unreachable (127.0.0.1:1/state")
    assert "hunter2-pw" not in result.output

    def crash(self: Any, name: str, rows: Any) -> Any:
        raise RuntimeError(f"retry blew up holding {SECRET}")

    monkeypatch.setattr(engine_module.SyncEngine, "retry", crash)
    result = runner.invoke(app, ["retry", "-c", str(config_file), "-s", "main", "-o", "json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout) == _entry(
        "main", 1, "RuntimeError: retry blew up holding [secure]"
    )


def test_text_output_of_a_config_error_is_unchanged(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file), "--sync", "ghost"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "config error" in result.stderr and "no sync named ghost" in result.stderr
