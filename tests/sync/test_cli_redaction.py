"""Errors reach no terminal and no run record with a password or a configured secret in them.

The warehouse URL below points at a closed local port: the driver's error names the URL,
with its secret query parameter.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync import scheduler
from sync.cli import _redacted_logs, app
from sync.config import load_config
from sync.engine import FatalRunError
from sync.redact import redact_text
from sync.store.state import StateStore

runner = CliRunner()
KEY = "pk_redaction_test_key_42"
CLEAR = ("s3cretpw", "hunter2", KEY, "reader:")


@pytest.fixture(params=["sslpassword", "password"])
def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    url = f"postgresql+psycopg://reader:s3cretpw@127.0.0.1:1/analytics?{request.param}=hunter2"
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.dwh]
type = "warehouse"
url = "{url}"
[destinations.klaviyo]
type = "klaviyo"
api_key = "{KEY}"
base_url = "http://127.0.0.1:1"
[syncs.main]
source = "dwh"
destinations = ["klaviyo"]
"""
    )
    return path


def _clean(text: str) -> None:
    for secret in CLEAR:
        assert secret not in text, text


def test_run_prints_and_stores_the_error_redacted(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file)])
    assert result.exit_code == 3, result.output
    assert "fatal" in result.stderr and "127.0.0.1:1/analytics?" in result.stderr
    assert "=[secure]" in result.stderr
    _clean(result.stdout + result.stderr)
    listed = runner.invoke(app, ["runs", "-c", str(config_file), "-o", "json"])
    [record] = json.loads(listed.stdout)
    assert record["status"] == "failed" and "=[secure]" in record["errors"][0]
    _clean(listed.stdout)


def test_run_json_entry_and_stderr_agree(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "-c", str(config_file), "-o", "json"])
    assert result.exit_code == 3, result.output
    [entry] = json.loads(result.stdout)
    assert entry["error"] in result.stderr.replace("\n", "")  # the same redacted text
    _clean(result.stdout + result.stderr)


def test_check_lines_show_urls_without_user_password(config_file: Path) -> None:
    result = runner.invoke(app, ["check", "-c", str(config_file)])
    assert result.exit_code == 3, result.output
    line = next(x for x in result.stdout.splitlines() if "source dwh" in x)
    assert line.startswith("FAIL") and "127.0.0.1:1/analytics?" in line and "[secure]" in line
    _clean(result.stdout + result.stderr)


def test_the_store_redacts_every_writer(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db", secrets=[KEY])
    try:
        run_id = store.start_run("main")
        store.finish_run(
            run_id,
            "failed",
            errors=[
                "OperationalError: postgresql://reader:s3cretpw@db:5432/x?sslpassword=hunter2",
                f"refused key {KEY}; dsn host=db password=hunter2",
            ],
        )
        [record] = store.runs()
    finally:
        store.close()
    assert record["errors"] == [
        "OperationalError: db:5432/x?sslpassword=[secure]",
        "refused key [secure]; dsn host=db password=[secure]",
    ]


def test_the_rejects_ledger_keeps_no_secret_an_esp_echoed(tmp_path: Path) -> None:
    # The guide: secrets never reach the rejects ledger. A reason is an ESP's or a
    # driver's text, which may echo the key or a connection URL it was given.
    from mapping.types import RejectedRow
    from sync.store.state import BatchCommit

    store = StateStore.open(f"sqlite:///{tmp_path}/state.db", secrets=[KEY])
    try:
        run_id = store.start_run("main")
        reason = f"400: key {KEY} may not send to postgresql://u:s3cretpw@db/x; see https://x.io/a"
        reject = RejectedRow("f.jsonl:1", "email", reason, "destination", {}, "esp")
        store.commit_batch(BatchCommit(run_id, "main", "events", None, [], [reject]))
        [row] = store.rejects(sync="main")
    finally:
        store.close()
    assert row["reason"] == "400: key [secure] may not send to db/x; see https://x.io/a"


def test_redact_text_keeps_ordinary_text() -> None:
    text = "read 10 rows from https://example.com/x?page=2 (key=value, short=12345)"
    assert redact_text(text, ["12345"]) == text  # no credential, and a short "secret"


def test_schedule_logs_failed_runs_redacted(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(config_file)

    class Engine:
        def __init__(self) -> None:
            self.config = config

        async def run_sync(self, name: str, **_: Any) -> Any:
            raise FatalRunError(
                "postgresql+psycopg://reader:s3cretpw@127.0.0.1:1/analytics?sslpassword=hunter2"
                f" refused {KEY}"
            )

    with _redacted_logs(config):
        asyncio.run(scheduler._fire(Engine(), "main", threading.Event(), None))  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "run of main failed: 127.0.0.1:1/analytics?sslpassword=[secure] refused [secure]" in err
    _clean(err)
