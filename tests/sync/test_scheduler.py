"""The scheduler: fires on cron, skips a sync another process is running, stops on request."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync import engine as engine_module
from sync.config import parse_config
from sync.engine import SyncEngine
from sync.report import RunReport
from sync.scheduler import next_fire_times, run_schedule, validate_schedules
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp, track


def _engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str = "*/5 * * * *"
) -> SyncEngine:
    data = tmp_path / "events.jsonl"
    data.write_bytes(track(1) + b"\n")
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: LinesSource(name, data)
    )
    monkeypatch.setattr(
        engine_module,
        "build_destination",
        lambda name, s, t=None: LoggingEsp(name, tmp_path / "esp.log"),
    )
    config = parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(tmp_path)}},
            "destinations": {"esp": {"type": "klaviyo"}},
            "syncs": {
                "every5": {"source": "events", "destinations": ["esp"], "schedule": schedule},
                "manual": {"source": "events", "destinations": ["esp"]},
            },
        }
    )
    return SyncEngine(config, StateStore.open(config.state.url))


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)  # time flies: every look at the clock is a minute later
        return self.now


def test_fires_on_schedule_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tmp_path, monkeypatch)
    assert set(next_fire_times(engine.config, datetime(2026, 1, 1, tzinfo=UTC))) == {"every5"}
    stop = threading.Event()
    reports: list[RunReport] = []

    def on_report(report: RunReport) -> None:
        reports.append(report)
        if len(reports) == 3:
            stop.set()

    asyncio.run(run_schedule(engine, stop, now=FakeClock(), on_report=on_report, poll=0.001))
    assert [r.sync for r in reports] == ["every5"] * 3
    assert reports[0].counts["esp.acknowledged"] == 1
    assert reports[1].counts.get("read", 0) == 0  # nothing new: nothing sent again
    assert [r["sync"] for r in engine.store.runs()] == ["every5"] * 3


def test_skips_while_another_process_runs_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path, monkeypatch)
    engine.store.acquire_lock("sync:every5", "other-host:1", timedelta(hours=1))
    stop = threading.Event()
    clock = FakeClock()

    def now() -> datetime:
        value = clock()
        if value > datetime(2026, 1, 1, 0, 30, tzinfo=UTC):
            stop.set()
        return value

    reports: list[Any] = []
    asyncio.run(run_schedule(engine, stop, now=now, on_report=reports.append, poll=0.001))
    assert reports == [] and engine.store.runs() == []


def test_invalid_cron_is_a_config_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tmp_path, monkeypatch, schedule="every tuesday")
    assert validate_schedules(engine.config) == [
        "syncs.every5.schedule: not a valid cron expression: 'every tuesday'"
    ]
