"""The CLI as a user meets it: exit codes, JSON reports, rejects listing, secrets hidden."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync import engine as engine_module
from sync.cli import app
from tests.sync.fakes import LinesSource, LoggingEsp, track

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "events.jsonl"
    data.write_bytes(b"\n".join([track(1), track(2, bad=True), b"{oops"]) + b"\n")
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: LinesSource(name, data)
    )
    monkeypatch.setattr(
        engine_module,
        "build_destination",
        lambda name, s, t=None: LoggingEsp(name, tmp_path / "esp.log"),
    )
    monkeypatch.setenv("SECRET_KEY_FOR_TEST", "pk_very_secret_value")
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.events]
type = "segment"
path = "{tmp_path}"
[destinations.esp]
type = "klaviyo"
api_key = "${{SECRET_KEY_FOR_TEST}}"
[syncs.main]
source = "events"
destinations = ["esp"]
"""
    )
    return path


def test_run_json_report_and_rerun(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(config_file), "--output", "json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["status"] == "completed"
    assert report["counts"]["read"] == 3
    assert report["counts"]["esp.acknowledged"] == 1
    assert report["counts"]["esp.rejected"] == 1
    assert report["counts"]["rejected.source"] == 1
    again = runner.invoke(app, ["run", "-c", str(config_file), "-o", "json"])
    assert json.loads(again.stdout)[0]["counts"].get("read", 0) == 0
    assert "pk_very_secret_value" not in result.output + again.output


def test_rejects_listing_names_record_field_reason(config_file: Path) -> None:
    runner.invoke(app, ["run", "--config", str(config_file)])
    result = runner.invoke(app, ["rejects", "--config", str(config_file), "--output", "json"])
    rows = {row["source_ref"]: row for row in json.loads(result.stdout)}
    assert rows["events.jsonl:2"]["field"] == "properties.bad"
    assert rows["events.jsonl:3"]["stage"] == "source"
    assert "not valid JSON" in rows["events.jsonl:3"]["reason"] or rows["events.jsonl:3"]["reason"]


def test_reject_threshold_exit_code(config_file: Path) -> None:
    text = config_file.read_text().replace(
        'destinations = ["esp"]', 'destinations = ["esp"]\nreject_threshold = 0.1'
    )
    config_file.write_text(text)
    result = runner.invoke(app, ["run", "--config", str(config_file)])
    assert result.exit_code == 4


def test_config_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[syncs.x]\nsource = "nope"\ndestinations = ["y"]\n')
    result = runner.invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "no source named 'nope'" in result.output
    missing = runner.invoke(app, ["run", "--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "no such config file" in missing.output


def test_unknown_sync_exit_2(config_file: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(config_file), "--sync", "nope"])
    assert result.exit_code == 2


def test_runs_lists_records(config_file: Path) -> None:
    runner.invoke(app, ["run", "--config", str(config_file)])
    result = runner.invoke(app, ["runs", "--config", str(config_file), "--output", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    [run] = json.loads(result.stdout)
    assert run["sync"] == "main" and run["status"] == "completed" and run["counts"]["read"] == 3


def test_retry_sends_fixed_rejects_once(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["run", "--config", str(config_file)])
    # The "fix": the ESP now accepts what it refused (as after correcting a mapping).
    original = LoggingEsp.drain

    async def accept_all(self: LoggingEsp) -> list:  # type: ignore[type-arg]
        for i, record in enumerate(self.queue):
            self.queue[i] = type(record)(
                record.key,
                record.action,
                {**record.fields, "bad": False},
                record.source_ref,
                record.event_time,
            )
        return await original(self)

    monkeypatch.setattr(LoggingEsp, "drain", accept_all)
    result = runner.invoke(
        app, ["retry", "--config", str(config_file), "--sync", "main", "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["esp.acknowledged"] == 1
    left = runner.invoke(app, ["rejects", "--config", str(config_file), "--output", "json"])
    assert [r["stage"] for r in json.loads(left.stdout)] == [
        "source"
    ]  # only the bad JSON line remains
    log = (config_file.parent / "esp.log").read_text().split()
    assert log == ["m1", "m2"]


def test_dry_run_writes_exact_requests_and_sends_nothing(tmp_path: Path) -> None:
    from tests.sync.fakes import track as make_track

    events = tmp_path / "logs"
    events.mkdir()
    (events / "part-0.jsonl").write_bytes(make_track(1, product_id="p-1", price=9.5) + b"\n")
    config = tmp_path / "dry.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.logs]
type = "segment"
path = "{events}"
[destinations.klaviyo]
type = "klaviyo"
api_key = "pk_dry_run_secret_1234"
[syncs.main]
source = "logs"
destinations = ["klaviyo"]
"""
    )
    out = tmp_path / "requests.jsonl"
    result = runner.invoke(
        app, ["run", "-c", str(config), "--dry-run", "--dry-run-file", str(out), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    requests = [json.loads(line) for line in out.read_text().splitlines()]
    [event] = [
        r for r in requests if r["url"].endswith("/api/events/") or r["url"].endswith("/api/events")
    ]
    assert event["url"].startswith("https://a.klaviyo.com/api/events")
    assert event["headers"]["authorization"] == "[secure]"
    assert event["headers"]["revision"] == "2026-07-15"
    attributes = event["json"]["data"]["attributes"]
    assert attributes["unique_id"] == "m1"
    assert attributes["metric"]["data"]["attributes"]["name"] == "Viewed Product"
    assert "pk_dry_run_secret_1234" not in out.read_text() + result.output
    [report] = json.loads(result.stdout)
    assert report["dry_run"] is True
    again = runner.invoke(
        app, ["run", "-c", str(config), "-o", "json", "--dry-run", "--dry-run-file", str(out)]
    )
    assert json.loads(again.stdout)[0]["counts"]["read"] == 1  # a dry run moved no cursor


def test_sample_writes_the_s3_layout_and_reports_what_was_planted(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample", "--out", str(tmp_path), "--events", "1000"])
    assert result.exit_code == 0, result.output
    assert "planted: abandoned_carts" in result.stdout
    files = list((tmp_path / "segment-logs").glob("*/*/*.gz"))
    assert files and (tmp_path / "manifest.json").exists()


def test_check_reaches_an_inbox_source_through_the_state_store(tmp_path: Path) -> None:
    import asyncio

    from sync.checks import run_checks
    from sync.config import parse_config

    config = parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"live": {"type": "inbox"}},
        }
    )
    results = {item: (ok, detail) for item, ok, detail, _ in asyncio.run(run_checks(config))}
    assert results["source live"] == (True, "inbox: 0 messages, newest id 0")


def test_retry_waits_for_a_run_of_the_same_sync(config_file: Path) -> None:
    from datetime import timedelta

    from sync.store.state import StateStore

    runner.invoke(app, ["run", "--config", str(config_file)])
    store = StateStore.open(f"sqlite:///{config_file.parent}/state.db")
    try:
        # A scheduled run of `main` in progress elsewhere holds the sync's lock.
        assert store.acquire_lock("sync:main", "otherhost:1:abcd", timedelta(minutes=10))
        result = runner.invoke(app, ["retry", "--config", str(config_file), "--sync", "main"])
        assert result.exit_code == 5, result.output
        assert "already running" in result.output
        # Nothing was sent or marked: the destination reject is still there to retry.
        stages = [r["stage"] for r in store.rejects(sync="main")]
        assert sorted(stages) == ["destination", "source"]
    finally:
        store.close()
    assert (config_file.parent / "esp.log").read_text().split() == ["m1"]


def test_retry_keeps_a_reject_it_cannot_send_again(config_file: Path) -> None:
    import sqlite3

    runner.invoke(app, ["run", "--config", str(config_file)])
    db = sqlite3.connect(config_file.parent / "state.db")
    with db:  # a destination reject recorded without its message
        db.execute(
            "UPDATE rejected_rows SET payload = '{\"fields\": {}}' WHERE stage = 'destination'"
        )
    db.close()
    result = runner.invoke(app, ["retry", "--config", str(config_file), "--sync", "main"])
    assert result.exit_code == 0, result.output
    assert "retried 0 rejected rows" in result.output
    assert "not sent again" in result.output and "kept no message" in result.output
    left = runner.invoke(app, ["rejects", "--config", str(config_file), "--output", "json"])
    assert sorted(r["stage"] for r in json.loads(left.stdout)) == ["destination", "source"]


def test_schedule_without_any_scheduled_sync_is_a_config_error(config_file: Path) -> None:
    result = runner.invoke(app, ["schedule", "--config", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "no sync has a `schedule`" in result.output


def test_retry_against_a_refusing_esp_is_fatal_with_one_json_document(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was: the ESP's AuthFailed escaped `retry` as a traceback (exit 1), stdout empty.
    from connectors.errors import AuthFailed

    runner.invoke(app, ["run", "--config", str(config_file)])

    async def refuse(self: LoggingEsp) -> list:  # type: ignore[type-arg]
        raise AuthFailed("401 from /api/events: key pk_very_secret_value refused", 401)

    monkeypatch.setattr(LoggingEsp, "drain", refuse)
    result = runner.invoke(
        app, ["retry", "--config", str(config_file), "--sync", "main", "--output", "json"]
    )
    assert result.exit_code == 3, result.output
    stopped = json.loads(result.stdout)
    assert stopped["status"] == "failed" and stopped["exit_code"] == 3
    assert "401" in stopped["error"] and "pk_very_secret_value" not in result.stdout
    # Nothing was marked retried: the reject is still there for the next attempt.
    left = runner.invoke(app, ["rejects", "--config", str(config_file), "--output", "json"])
    assert sorted(r["stage"] for r in json.loads(left.stdout)) == ["destination", "source"]


def test_retry_of_a_busy_sync_prints_one_json_document(config_file: Path) -> None:
    from datetime import timedelta

    from sync.store.state import StateStore

    runner.invoke(app, ["run", "--config", str(config_file)])
    store = StateStore.open(f"sqlite:///{config_file.parent}/state.db")
    try:
        assert store.acquire_lock("sync:main", "otherhost:1:abcd", timedelta(minutes=10))
        result = runner.invoke(app, ["retry", "-c", str(config_file), "-s", "main", "-o", "json"])
    finally:
        store.close()
    assert result.exit_code == 5
    assert json.loads(result.stdout)["status"] == "busy"


def test_retry_resends_a_mapping_reject(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Was: a Klaviyo mapping reject kept the raw message as its payload, not under
    # "message", so `retry` said "kept no message" and sent nothing.
    from mapping.types import RejectedRow

    original_map = LoggingEsp.map

    def strict(self: LoggingEsp, message: Any, customer: Any) -> list[Any]:
        if message.properties.get("bad"):  # as Klaviyo's action base rejects
            return [RejectedRow(message.source_ref, "bad", "invalid", "mapping", dict(message.raw))]
        return original_map(self, message, customer)

    monkeypatch.setattr(LoggingEsp, "map", strict)
    runner.invoke(app, ["run", "--config", str(config_file)])
    # The fix: the destination now maps and accepts what it refused.
    from connectors.base import Record

    def fixed(self: LoggingEsp, message: Any, customer: Any) -> list[Any]:
        out = original_map(self, message, customer)
        return [replace(r, fields={**r.fields, "bad": False}) for r in out if isinstance(r, Record)]

    monkeypatch.setattr(LoggingEsp, "map", fixed)
    result = runner.invoke(app, ["retry", "-c", str(config_file), "-s", "main", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["esp.acknowledged"] == 1
    assert (config_file.parent / "esp.log").read_text().split() == ["m1", "m2"]
