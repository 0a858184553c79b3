"""README audit: exit codes of `check`, dry-run output, help text, local commands, sample."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from sync.checks import CheckResult, exit_code
from sync.cli import app
from tests.sync.fakes import track

runner = CliRunner()


def _config(tmp_path: Path, *, schedule: str | None = None, api_key: str = "pk_audit_1234") -> Path:
    events = tmp_path / "logs"
    events.mkdir(exist_ok=True)
    (events / "part-0.jsonl").write_bytes(track(1) + b"\n" + track(2) + b"\n")
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.logs]
type = "segment"
path = "{events}"
[destinations.klaviyo]
type = "klaviyo"
api_key = "{api_key}"
base_url = "http://127.0.0.1:1"
[destinations.klaviyo.retry]
max_attempts = 1
[syncs.main]
source = "logs"
destinations = ["klaviyo"]
"""
        + (f'schedule = "{schedule}"\n' if schedule is not None else "")
    )
    return path


# 2. a config problem is exit 2 in `check`, as in `schedule` ------------------------------


@pytest.mark.parametrize("cron", ["0 */10 * * * *", "0 0 30 2 *", "@reboot"])
def test_check_exits_2_for_an_invalid_cron_like_schedule(tmp_path: Path, cron: str) -> None:
    config = _config(tmp_path, schedule=cron)
    checked = runner.invoke(app, ["check", "-c", str(config)])
    scheduled = runner.invoke(app, ["schedule", "-c", str(config)])
    assert scheduled.exit_code == 2, scheduled.output
    # The ESP is unreachable too (a closed port): the config problem still wins.
    assert "FAIL  destination klaviyo" in checked.stdout
    assert checked.exit_code == 2, checked.output
    assert "FAIL  schedule: syncs.main.schedule" in checked.stdout


def test_check_keeps_3_for_connectivity_alone(tmp_path: Path) -> None:
    checked = runner.invoke(app, ["check", "-c", str(_config(tmp_path, schedule="*/5 * * * *"))])
    assert checked.exit_code == 3, checked.output


def test_check_exit_code_order() -> None:
    down = CheckResult("destination k", False, "down")
    assert exit_code([CheckResult("state", True, "")]) == 0
    assert exit_code([down]) == 3
    assert exit_code([down, CheckResult("schedule", False, "bad", config=True)]) == 2


# 3. dry-run requests alone on stdout, counts labelled -----------------------------------


def test_dry_run_text_keeps_stdout_to_json_lines(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(_config(tmp_path)), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    assert "dry run: nothing sent" in result.stderr and "would send" in result.stderr
    assert "acknowledged" not in result.stderr


def test_a_real_run_table_still_says_acknowledged(tmp_path: Path) -> None:
    from sync.report import RunReport
    from sync.views import report_table

    def header(dry: bool) -> list[str]:
        table = report_table([RunReport(sync="s", run_id=1, dry_run=dry)])
        return [str(c.header) for c in table.columns] + [str(table.title)]

    assert "acknowledged" in header(False) and "would send" not in header(False)
    assert "would send" in header(True) and "espbridge run (dry run: nothing sent)" in header(True)


# 4. `serve --help` shows `[ingest]` ------------------------------------------------------


def test_serve_help_shows_the_ingest_section() -> None:
    result = runner.invoke(
        app, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "Default: [ingest] host." in result.stdout
    assert "Default: [ingest] port." in result.stdout


# 6. local commands do not need ESP secrets -----------------------------------------------


@pytest.fixture
def unset_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AUDIT_UNSET_KEY", raising=False)
    monkeypatch.delenv("AUDIT_UNSET_URL", raising=False)
    return _config(tmp_path, api_key="${AUDIT_UNSET_KEY}")


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["runs", "-o", "json"],
        ["rejects"],
        ["triggers", "list"],
        ["triggers", "counts"],
    ],
)
def test_local_commands_load_without_esp_secrets(unset_secrets: Path, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--config", str(unset_secrets)])
    assert result.exit_code == 0, result.output
    assert (unset_secrets.parent / "state.db").exists()  # the configured store, not a default


@pytest.mark.parametrize(
    "command", [["run"], ["check"], ["retry", "--sync", "main"], ["schedule"], ["serve"]]
)
def test_commands_that_reach_out_still_fail_early(unset_secrets: Path, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--config", str(unset_secrets)])
    assert result.exit_code == 2, result.output
    assert "environment variable AUDIT_UNSET_KEY is not set" in result.stderr


def test_local_commands_still_check_the_state_section(tmp_path: Path) -> None:
    path = tmp_path / "espbridge.toml"
    path.write_text('[state]\nurl = "${AUDIT_UNSET_STATE_URL}"\n')
    result = runner.invoke(app, ["runs", "-c", str(path)])
    assert result.exit_code == 2
    assert "state.url: environment variable AUDIT_UNSET_STATE_URL is not set" in result.stderr


def test_the_state_only_mode_ends_with_the_command(unset_secrets: Path) -> None:
    from sync.config import ConfigError, load_config

    assert runner.invoke(app, ["runs", "-c", str(unset_secrets)]).exit_code == 0
    with pytest.raises(ConfigError, match="AUDIT_UNSET_KEY"):
        load_config(unset_secrets)


# 7. `sample --warehouse` takes a path or a duckdb:/// URL ---------------------------------


@pytest.mark.parametrize("form", ["path", "url"])
def test_sample_warehouse_path_or_duckdb_url(tmp_path: Path, form: str) -> None:
    target = tmp_path / "wh.duckdb"
    given = str(target) if form == "path" else f"duckdb:///{target}"
    result = runner.invoke(
        app, ["sample", "--events", "1000", "--out", str(tmp_path / "s"), "--warehouse", given]
    )
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(target), read_only=True) as con:
        tables = con.execute("select count(*) from information_schema.tables").fetchone()
    assert tables and tables[0] > 0


@pytest.mark.parametrize(
    "given", ["postgresql://u:pw@127.0.0.1:1/x", "sqlite:///x.db", "duckdb:///"]
)
def test_sample_warehouse_other_schemes_are_a_usage_error(tmp_path: Path, given: str) -> None:
    result = runner.invoke(
        app, ["sample", "--events", "1000", "--out", str(tmp_path / "s"), "--warehouse", given]
    )
    assert result.exit_code == 2, result.output
    assert "usage error" in result.stderr and "pw@" not in result.stderr
