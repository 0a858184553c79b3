"""The scheduler under an operator's weeks: odd cron, clock steps, overruns, failures, stops."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from sync import engine as engine_module
from sync.config import Config, parse_config
from sync.engine import SyncEngine
from sync.report import RunReport
from sync.scheduler import run_schedule, validate_schedules
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp, track

T0 = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)


def _config(tmp_path: Path, batch_size: int = 5000, **schedules: str) -> Config:
    syncs = {
        name: {
            "source": "events",
            "destinations": ["esp"],
            "schedule": expr,
            "batch_size": batch_size,
        }
        for name, expr in schedules.items()
    }
    return parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(tmp_path)}},
            "destinations": {"esp": {"type": "klaviyo"}},
            "syncs": syncs,
        }
    )


class Clock:
    """A clock that only moves when told (`advance`, `set`), or by `tick` per look."""

    def __init__(self, start: datetime = T0, tick: timedelta = timedelta(seconds=10)) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now


class NoRuns:
    def runs(self, *, sync: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return []


class StubEngine:
    """Records when each sync was fired; `behave` may advance the clock or raise."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        stop: threading.Event,
        behave: Callable[[str], None] = lambda name: None,
        runs: int = 1,
    ) -> None:
        self.config = config
        self.store: Any = NoRuns()
        self.clock = clock
        self.stop = stop
        self.behave = behave
        self.runs = runs
        self.fired: list[tuple[str, datetime]] = []

    async def run_sync(self, name: str, *, stop: threading.Event | None = None) -> RunReport:
        self.fired.append((name, self.clock.now))
        if len(self.fired) >= self.runs:
            self.stop.set()
        self.behave(name)
        return RunReport(sync=name, run_id=len(self.fired), dry_run=False)


def _run(engine: StubEngine, **kwargs: Any) -> None:
    asyncio.run(
        run_schedule(cast(SyncEngine, engine), engine.stop, now=engine.clock, poll=0.0001, **kwargs)
    )


# cron expressions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 */5 * * * *", "has 6 fields, expected 5"),  # Quartz: seconds first
        ("*/5 * * * * 30", "has 6 fields, expected 5"),
        ("0 0 * * * * 2027", "has 7 fields, expected 5"),
        ("0 0 30 2 *", "never fires (no such date)"),
        ("0 0 31 4 *", "never fires (no such date)"),
        ("@reboot", "not a valid cron expression"),
        ("H * * * *", "not a valid cron expression"),
    ],
)
def test_bad_cron_is_a_config_problem_naming_sync_and_expression(
    tmp_path: Path, expression: str, problem: str
) -> None:
    problems = validate_schedules(_config(tmp_path, nightly=expression, ok="*/5 * * * *"))
    assert len(problems) == 1
    assert problems[0].startswith(f"syncs.nightly.schedule: {problem}")
    assert problems[0].endswith(repr(expression))


@pytest.mark.parametrize(
    "expression",
    ["*/5 * * * *", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 0 29 2 *"],
)
def test_five_fields_and_macros_are_accepted(tmp_path: Path, expression: str) -> None:
    assert validate_schedules(_config(tmp_path, nightly=expression)) == []


def test_check_reports_bad_cron(tmp_path: Path) -> None:
    from sync.checks import _schedule_problems

    assert _schedule_problems(_config(tmp_path, nightly="0 0 30 2 *")) == [
        "syncs.nightly.schedule: never fires (no such date): '0 0 30 2 *'"
    ]


def test_a_sync_that_never_fires_does_not_crash_the_others(tmp_path: Path) -> None:
    stop = threading.Event()
    engine = StubEngine(_config(tmp_path, never="0 0 30 2 *", every5="*/5 * * * *"), Clock(), stop)
    _run(engine)
    assert [name for name, _ in engine.fired] == ["every5"]


def test_cron_is_read_in_utc(tmp_path: Path) -> None:
    stop = threading.Event()
    clock = Clock(tick=timedelta(minutes=5))
    engine = StubEngine(_config(tmp_path, daily="0 6 * * *"), clock, stop)
    _run(engine)
    assert engine.fired[0][1].astimezone(UTC).hour == 6


# clock steps ---------------------------------------------------------------------------


def test_clock_stepping_back_reschedules_instead_of_stalling(tmp_path: Path) -> None:
    """A clock set a day ahead at boot, then corrected by NTP, must not stall a day."""
    stop = threading.Event()
    clock = Clock(start=T0 + timedelta(days=1))
    engine = StubEngine(_config(tmp_path, every5="*/5 * * * *"), clock, stop)
    real_call = clock.__call__
    looks = 0

    def now() -> datetime:
        nonlocal looks
        looks += 1
        if looks == 3:
            clock.now = T0  # NTP steps the clock back a day
        if looks > 3 and clock.now > T0 + timedelta(hours=2):
            stop.set()  # without rescheduling it would wait for tomorrow's 10:05
        return real_call()

    asyncio.run(run_schedule(cast(SyncEngine, engine), stop, now=now, poll=0.0001))
    assert [when for _, when in engine.fired] == [datetime(2026, 1, 1, 10, 5, tzinfo=UTC)]


def test_clock_jumping_forward_fires_each_sync_once(tmp_path: Path) -> None:
    stop = threading.Event()
    clock = Clock()
    engine = StubEngine(_config(tmp_path, a="*/5 * * * *", b="0 * * * *"), clock, stop, runs=3)
    looks = 0

    def now() -> datetime:
        nonlocal looks
        looks += 1
        if looks == 3:
            clock.now += timedelta(days=2)  # a suspended VM wakes up
        return clock()

    asyncio.run(run_schedule(cast(SyncEngine, engine), stop, now=now, poll=0.0001))
    names = [name for name, _ in engine.fired]
    assert sorted(names[:2]) == ["a", "b"]  # one catch-up each, not 576 of a
    assert names[2] == "a" and engine.fired[2][1] >= engine.fired[1][1]


# overruns ------------------------------------------------------------------------------


def test_overrun_skips_ticks_of_the_same_sync_and_catches_up_others_once(
    tmp_path: Path,
) -> None:
    stop = threading.Event()
    clock = Clock()

    def slow(name: str) -> None:
        if name == "slow":
            clock.now += timedelta(minutes=47)  # a run four times its interval

    engine = StubEngine(
        _config(tmp_path, slow="*/10 * * * *", quick="*/5 * * * *"), clock, stop, slow, runs=4
    )
    _run(engine)
    fired = [(name, when.strftime("%H:%M")) for name, when in engine.fired]
    # 10:05 quick; 10:10 slow runs until 10:57; quick's nine missed ticks fire once at
    # 10:57; slow's ticks 10:20..10:50 are skipped: its next is 11:00, the first after it.
    assert fired == [("quick", "10:05"), ("slow", "10:10"), ("quick", "10:57"), ("slow", "11:00")]


# failures ------------------------------------------------------------------------------


def test_a_failing_run_is_logged_and_others_keep_firing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()

    def boom(name: str) -> None:
        if name == "broken":
            raise ZeroDivisionError("bug in a connector")

    engine = StubEngine(
        _config(tmp_path, broken="*/5 * * * *", fine="*/5 * * * *"), Clock(), stop, boom, runs=4
    )
    with caplog.at_level(logging.ERROR, "espbridge.schedule"):
        _run(engine)
    assert [name for name, _ in engine.fired] == ["broken", "fine", "broken", "fine"]
    assert "run of broken failed" in caplog.text and "ZeroDivisionError" in caplog.text


def test_a_failing_report_callback_is_not_a_failed_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    engine = StubEngine(_config(tmp_path, every5="*/5 * * * *"), Clock(), stop, runs=2)

    def closed_stdout(report: RunReport) -> None:
        raise BrokenPipeError("stdout is gone")

    with caplog.at_level(logging.ERROR, "espbridge.schedule"):
        _run(engine, on_report=closed_stdout)
    assert len(engine.fired) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["reporting the run of every5 failed"] * 2


def _real_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, broken: bool, batch_size: int = 5000
) -> SyncEngine:
    data = tmp_path / "events.jsonl"
    data.write_bytes(track(1) + b"\n" + track(2) + b"\n")

    def source(name: str, settings: Any, store: Any = None) -> LinesSource:
        if broken:
            raise KeyError("unexpected")
        return LinesSource(name, data)

    monkeypatch.setattr(engine_module, "build_source", source)
    monkeypatch.setattr(
        engine_module,
        "build_destination",
        lambda name, s, t=None: LoggingEsp(name, tmp_path / "esp.log"),
    )
    config = _config(tmp_path, batch_size, every5="*/5 * * * *")
    return SyncEngine(config, StateStore.open(config.state.url))


def test_an_unexpected_exception_is_recorded_as_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _real_engine(tmp_path, monkeypatch, broken=True)
    stop = threading.Event()
    clock = Clock(tick=timedelta(minutes=1))

    def now() -> datetime:
        if clock.now > T0 + timedelta(minutes=12):
            stop.set()
        return clock()

    asyncio.run(run_schedule(engine, stop, now=now, poll=0.0001))
    runs = engine.store.runs()
    assert [r["status"] for r in runs] == ["failed", "failed"]
    assert "KeyError" in runs[0]["errors"][0]
    assert engine.store.acquire_lock("sync:every5", "me", timedelta(minutes=1))  # released


# stopping ------------------------------------------------------------------------------


def test_stop_during_a_run_finishes_the_batch_and_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _real_engine(tmp_path, monkeypatch, broken=False, batch_size=1)  # two batches
    stop = threading.Event()
    real = engine.run_sync

    async def run_sync(name: str, **kwargs: Any) -> RunReport:
        return await real(name, on_batch=lambda report: stop.set(), **kwargs)  # SIGTERM

    monkeypatch.setattr(engine, "run_sync", run_sync)
    reports: list[RunReport] = []
    clock = Clock(tick=timedelta(minutes=1))
    asyncio.run(run_schedule(engine, stop, now=clock, on_report=reports.append, poll=0.0001))
    assert [r.status for r in reports] == ["completed"]
    assert reports[0].counts["read"] == 1  # the first batch, committed; not the second
    assert engine.store.get_bookmark("every5", "events") == {"line": 1}


def test_stop_during_the_sleep_returns_promptly(tmp_path: Path) -> None:
    stop = threading.Event()
    engine = StubEngine(_config(tmp_path, yearly="@yearly"), Clock(tick=timedelta(0)), stop)
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    asyncio.run(
        run_schedule(cast(SyncEngine, engine), stop, now=lambda: datetime.now(UTC), poll=0.05)
    )
    assert time.monotonic() - started < 1 and engine.fired == []


# locks ---------------------------------------------------------------------------------


def test_an_expired_lock_of_a_dead_process_on_another_host_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _real_engine(tmp_path, monkeypatch, broken=False)
    engine.store.acquire_lock("sync:every5", "other-host:4242:dead", timedelta(seconds=-1))
    stop = threading.Event()
    reports: list[RunReport] = []

    def on_report(report: RunReport) -> None:
        reports.append(report)
        stop.set()

    clock = Clock(tick=timedelta(minutes=1))
    asyncio.run(run_schedule(engine, stop, now=clock, on_report=on_report, poll=0.0001))
    assert [r.status for r in reports] == ["completed"]


def test_a_batch_slower_than_the_lock_ttl_keeps_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first warehouse query longer than the TTL must not let a second process in."""
    engine = _real_engine(tmp_path, monkeypatch, broken=False)
    monkeypatch.setattr(engine_module, "LOCK_TTL", timedelta(seconds=0.2))
    taken_by_other: list[bool] = []

    class SlowSource(LinesSource):
        def read(self, bookmark: Any, *, batch_size: int) -> Any:
            time.sleep(0.6)  # three TTLs before the first batch
            other = engine.store.acquire_lock("sync:every5", "other-host:1:x", timedelta(hours=1))
            taken_by_other.append(other)
            yield from super().read(bookmark, batch_size=batch_size)

    data = tmp_path / "events.jsonl"
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: SlowSource(name, data)
    )
    stop = threading.Event()
    reports: list[RunReport] = []

    def on_report(report: RunReport) -> None:
        reports.append(report)
        stop.set()

    clock = Clock(tick=timedelta(minutes=1))
    asyncio.run(run_schedule(engine, stop, now=clock, on_report=on_report, poll=0.0001))
    assert taken_by_other == [False]
    assert [r.status for r in reports] == ["completed"]


# restarts ------------------------------------------------------------------------------


class LastRun:
    def __init__(self, started_at: datetime | None) -> None:
        self.started_at = started_at

    def runs(self, *, sync: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return [] if self.started_at is None else [{"started_at": self.started_at}]


NEXT_02 = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last_run", "first_fire"),
    [
        (T0 - timedelta(days=1, hours=7, minutes=55), T0),  # missed today's 02:00: now
        (T0 - timedelta(hours=7, minutes=55), NEXT_02),  # ran at 02:05: next tick
        (None, NEXT_02),  # never ran: waits for its first tick
    ],
)
def test_a_tick_missed_while_the_scheduler_was_down_fires_once_at_start(
    tmp_path: Path, last_run: datetime | None, first_fire: datetime
) -> None:
    stop = threading.Event()
    clock = Clock(tick=timedelta(minutes=5))  # starts 10:00:30
    engine = StubEngine(_config(tmp_path, nightly="0 2 * * *"), clock, stop)
    engine.store = LastRun(last_run)
    _run(engine)
    assert first_fire <= engine.fired[0][1] < first_fire + timedelta(minutes=15)


def test_an_unreachable_store_at_start_does_not_stop_the_scheduler(tmp_path: Path) -> None:
    class Down:
        def runs(self, **kwargs: Any) -> list[dict[str, Any]]:
            raise ConnectionError("state store down")

    stop = threading.Event()
    engine = StubEngine(_config(tmp_path, every5="*/5 * * * *"), Clock(), stop)
    engine.store = Down()
    _run(engine)
    assert [name for name, _ in engine.fired] == ["every5"]
