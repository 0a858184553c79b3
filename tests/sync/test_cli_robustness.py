"""The CLI under a demanding user: clean stdout for JSON, exact reasons, no secret, no crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli import app

runner = CliRunner()
SECRET = "pk_cli_do_not_print_77"


def _config(tmp_path: Path, destination: str, state: str | None = None) -> Path:
    events = tmp_path / "events"
    events.mkdir(exist_ok=True)
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "{state or f"sqlite:///{tmp_path}/state.db"}"
[sources.events]
type = "segment"
path = "{events}"
[destinations.klaviyo]
type = "klaviyo"
{destination}
[destinations.klaviyo.retry]
max_attempts = 1
[syncs.main]
source = "events"
destinations = ["klaviyo"]
"""
    )
    return path


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESPB_CLI_KEY", SECRET)
    return _config(tmp_path, 'api_key = "${ESPB_CLI_KEY}"\nbase_url = "http://127.0.0.1:1"')


def test_dry_run_with_json_output_refuses_to_mix_stdout(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file), "--dry-run", "-o", "json"])
    assert result.exit_code == 2
    # stdout holds only the JSON document saying why (as every `-o json` exit does)
    [refused] = json.loads(result.stdout)
    assert refused["exit_code"] == 2 and "--dry-run-file" in refused["error"]
    assert "--dry-run-file" in result.stderr


def test_an_unknown_output_format_is_a_usage_error(config_file: Path) -> None:
    for command in ("run", "runs", "rejects"):
        result = runner.invoke(app, [command, "-c", str(config_file), "-o", "jsno"])
        assert result.exit_code == 2, (command, result.output)
        assert result.stdout == ""


def test_a_negative_limit_is_a_usage_error(config_file: Path) -> None:
    for command in ("runs", "rejects"):
        result = runner.invoke(app, [command, "-c", str(config_file), "--limit", "-1"])
        assert result.exit_code == 2, (command, result.output)


def test_runs_and_rejects_on_a_fresh_store_print_empty_json(config_file: Path) -> None:
    for command in ("runs", "rejects"):
        result = runner.invoke(app, [command, "-c", str(config_file), "-o", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []


def test_brackets_in_an_error_are_printed_not_taken_as_markup(tmp_path: Path) -> None:
    # A closing tag made Rich raise MarkupError: a traceback instead of the config error.
    bad = tmp_path / "bad.toml"
    bad.write_text('[state]\n"[/x]" = 1\n')
    result = runner.invoke(app, ["check", "-c", str(bad)])
    assert result.exit_code == 2, result.output
    assert "state.[/x]: unknown key" in result.stderr


def test_check_shows_the_exact_reason_with_its_brackets(tmp_path: Path) -> None:
    # Klaviyo's reason names the [oauth] section; Rich used to swallow it as a tag.
    config = _config(tmp_path, 'base_url = "http://127.0.0.1:1"')
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 3
    assert "set api_key or [oauth] in the destination config" in result.stdout


def test_check_reports_an_unreachable_destination_with_exit_3(config_file: Path) -> None:
    result = runner.invoke(app, ["check", "-c", str(config_file)])
    assert result.exit_code == 3
    assert "FAIL  destination klaviyo: TransportFailure" in result.stdout
    assert SECRET not in result.output


def test_check_reports_a_refused_key_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esp_sandbox.context import SandboxConfig
    from esp_sandbox.server import SandboxServer

    monkeypatch.setenv("ESPB_CLI_KEY", SECRET)
    with SandboxServer(SandboxConfig(klaviyo_api_keys={"pk_the_right_one"})) as sandbox:
        base = sandbox.klaviyo_url
        config = _config(tmp_path, f'api_key = "${{ESPB_CLI_KEY}}"\nbase_url = "{base}"')
        result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 3
    assert "FAIL  destination klaviyo: AuthFailed: 401" in result.stdout
    assert SECRET not in result.output


def test_state_url_secrets_never_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://espb:pw_in_userinfo@127.0.0.1:1/db?sslpassword=pw_in_query"
    config = _config(tmp_path, 'api_key = "pk_x_123456"\nbase_url = "http://127.0.0.1:1"', url)
    checked = runner.invoke(app, ["check", "-c", str(config)])
    listed = runner.invoke(app, ["runs", "-c", str(config)])
    assert checked.exit_code == 3 and listed.exit_code == 3
    assert "FAIL  state 127.0.0.1:1/db?sslpassword=[secure]" in checked.stdout
    assert "state store unreachable (127.0.0.1:1/db?sslpassword=[secure])" in listed.stderr
    for result in (checked, listed):
        assert "pw_in_query" not in result.output and "pw_in_userinfo" not in result.output


def test_unset_variable_names_file_and_key_but_no_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESPB_CLI_UNSET", raising=False)
    config = _config(tmp_path, 'api_key = "${ESPB_CLI_UNSET}"')
    result = runner.invoke(app, ["check", "-c", str(config)])
    assert result.exit_code == 2
    assert str(config) in result.stderr
    assert "destinations.klaviyo.api_key: environment variable ESPB_CLI_UNSET is not set" in (
        result.stderr
    )


def test_check_tries_a_failing_esp_twice_not_a_run_s_six_times(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[str] = []

    class Down(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "espbridge.toml"
        path.write_text(
            f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[destinations.klaviyo]
type = "klaviyo"
api_key = "pk_check_123456"
base_url = "http://127.0.0.1:{server.server_address[1]}"
"""
        )
        result = runner.invoke(app, ["check", "-c", str(path)])
    finally:
        server.shutdown()
    assert result.exit_code == 3, result.output
    assert "FAIL  destination klaviyo: ServerError" in result.stdout
    assert len(calls) == 2  # the default retry policy would make six attempts, ~15 s
