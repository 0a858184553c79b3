"""The run loop: exactly once across re-runs, rejects kept, counts that add up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sync import engine as engine_module
from sync.config import Config, parse_config
from sync.engine import SyncBusy, SyncEngine
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp, track


def _config(tmp_path: Path, source_path: Path | None = None) -> Config:
    return parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(source_path or tmp_path)}},
            "destinations": {"esp": {"type": "klaviyo", "api_key": "pk_test_123456"}},
            "syncs": {"main": {"source": "events", "destinations": ["esp"], "batch_size": 10}},
        }
    )


@pytest.fixture
def wired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    data = tmp_path / "events.jsonl"
    log = tmp_path / "esp.log"
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: LinesSource(name, data)
    )
    monkeypatch.setattr(
        engine_module, "build_destination", lambda name, s, t=None: LoggingEsp(name, log)
    )
    config = _config(tmp_path)
    store = StateStore.open(config.state.url)
    return {"data": data, "log": log, "config": config, "store": store}


def test_rerun_sends_only_new(wired: dict[str, Any]) -> None:
    data, log, store = wired["data"], wired["log"], wired["store"]
    data.write_bytes(b"\n".join(track(i) for i in range(25)) + b"\n")
    engine = SyncEngine(wired["config"], store)
    first = asyncio.run(engine.run_sync("main"))
    assert first.counts["esp.acknowledged"] == 25 and first.counts["read"] == 25
    with data.open("ab") as handle:
        handle.write(b"\n".join(track(i) for i in range(25, 30)) + b"\n")
    second = asyncio.run(engine.run_sync("main"))
    assert second.counts["read"] == 5 and second.counts["esp.acknowledged"] == 5
    assert log.read_text().split() == [f"m{i}" for i in range(30)]


def test_rejects_are_kept_and_counts_add_up(wired: dict[str, Any]) -> None:
    data, store = wired["data"], wired["store"]
    lines = [
        track(0),
        b"{not json",
        track(2, bad=True),
        b'{"type":"track","event":"x","userId":"u"}',
        track(4),
        track(4),
    ]
    data.write_bytes(b"\n".join(lines) + b"\n")
    report = asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    c = report.counts
    assert c["read"] == 6 and c["messages"] == 4 and c["rejected.source"] == 2
    assert c["esp.records"] == 4
    assert (
        c["esp.acknowledged"] + c["esp.rejected"] + c["esp.duplicate_in_batch"] == c["esp.records"]
    )
    rejects = {r["source_ref"]: r for r in store.rejects(sync="main")}
    assert rejects["events.jsonl:2"]["stage"] == "source"
    assert rejects["events.jsonl:4"]["field"] == "messageId"
    assert rejects["events.jsonl:3"]["reason"] == "invalid value"
    assert rejects["events.jsonl:3"]["field"] == "properties.bad"
    assert rejects["events.jsonl:3"]["payload"]["message"]["messageId"] == "m2"
    [run] = store.runs(sync="main")
    assert run["counts"]["read"] == 6 and run["status"] == "completed"


def test_duplicate_message_ids_across_runs_are_sent_once(wired: dict[str, Any]) -> None:
    data, log, store = wired["data"], wired["log"], wired["store"]
    data.write_bytes(track(1) + b"\n")
    asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    with data.open("ab") as handle:
        handle.write(track(1) + b"\n")
    report = asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    assert report.counts["esp.already_sent"] == 1
    assert log.read_text().split() == ["m1"]


def test_dry_run_changes_nothing(wired: dict[str, Any]) -> None:
    data, log, store = wired["data"], wired["log"], wired["store"]
    log.touch()
    data.write_bytes(track(1) + b"\n")
    report = asyncio.run(SyncEngine(wired["config"], store).run_sync("main", dry_run=True))
    assert report.dry_run and report.counts["read"] == 1
    assert store.get_bookmark("main", "events") is None
    assert store.ledger_status("esp", ["m1"]) == {}
    assert store.runs()[0]["dry_run"] is True


def test_second_concurrent_run_is_refused(wired: dict[str, Any]) -> None:
    from datetime import timedelta

    store = wired["store"]
    assert store.acquire_lock("sync:main", "someone-else", timedelta(minutes=5))
    with pytest.raises(SyncBusy):
        asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))


def test_stop_finishes_the_current_batch_then_returns(wired: dict[str, Any]) -> None:
    import threading

    data, log, store = wired["data"], wired["log"], wired["store"]
    data.write_bytes(b"\n".join(track(i) for i in range(35)) + b"\n")
    stop = threading.Event()
    report = asyncio.run(
        SyncEngine(wired["config"], store).run_sync(
            "main", stop=stop, on_batch=lambda r: stop.set()
        )
    )
    assert report.status == "completed" and report.counts["read"] == 10  # one batch of 10
    assert store.get_bookmark("main", "events") == {"line": 10}
    assert log.read_text().split() == [f"m{i}" for i in range(10)]
    rest = asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    assert rest.counts["read"] == 25


def test_an_unreachable_source_is_fatal_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.engine import FatalRunError

    log = tmp_path / "esp.log"
    monkeypatch.setattr(
        engine_module, "build_destination", lambda name, s, t=None: LoggingEsp(name, log)
    )
    config = _config(tmp_path, source_path=tmp_path / "no-such-folder")
    store = StateStore.open(config.state.url)
    with pytest.raises(FatalRunError, match="no-such-folder: no such folder"):
        asyncio.run(SyncEngine(config, store).run_sync("main"))
    [run] = store.runs(limit=1)
    assert run["status"] == "failed" and "no such folder" in run["errors"][0]
    store.close()


def test_a_run_that_lost_its_lock_stops_and_is_recorded(
    wired: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.engine import FatalRunError

    data, store = wired["data"], wired["store"]
    data.write_bytes(b"\n".join(track(i) for i in range(25)) + b"\n")
    # The lock expired during a slow batch and another process took it.
    monkeypatch.setattr(store, "refresh_lock", lambda *args: False)
    with pytest.raises(FatalRunError, match="lost its lock"):
        asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    [run] = store.runs(limit=1)
    assert run["status"] == "failed" and "lost its lock" in run["errors"][0]
    assert run["counts"]["read"] == 10  # the first batch (committed), nothing after it


def test_the_lock_is_released_when_the_run_record_cannot_be_written(
    wired: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wired["store"]

    def down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("state store went away")

    start_run = store.start_run
    monkeypatch.setattr(store, "start_run", down)
    with pytest.raises(RuntimeError):
        asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    monkeypatch.setattr(store, "start_run", start_run)
    # Not held for the lock's 10 minutes: the next run starts at once.
    wired["data"].write_bytes(track(1) + b"\n")
    report = asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    assert report.status == "completed"


def test_an_esp_that_keeps_failing_is_a_fatal_run_error(
    wired: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.errors import ServerError
    from sync.engine import FatalRunError

    async def down(self: LoggingEsp) -> list[Any]:
        raise ServerError("503 from /api/events (after 6 attempts)", 503)

    monkeypatch.setattr(LoggingEsp, "drain", down)
    wired["data"].write_bytes(track(1) + b"\n")
    with pytest.raises(FatalRunError, match="503 from /api/events"):
        asyncio.run(SyncEngine(wired["config"], wired["store"]).run_sync("main"))
    [run] = wired["store"].runs(limit=1)
    assert run["status"] == "failed"
    assert wired["store"].get_bookmark("main", "events") is None  # read again next run


def test_a_destination_failing_fatally_cancels_the_others_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Was asyncio.gather: the other destination's sends went on (and backed off) after
    # the run had failed, beside the next run of `schedule` or `serve` in the same loop.
    from connectors.errors import AuthFailed
    from sync.engine import FatalRunError

    data, log = tmp_path / "events.jsonl", tmp_path / "esp.log"
    data.write_bytes(track(1) + b"\n")
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: LinesSource(name, data)
    )
    monkeypatch.setattr(
        engine_module, "build_destination", lambda name, s, t=None: LoggingEsp(name, log)
    )
    seen: list[str] = []

    async def drain(self: LoggingEsp) -> list[Any]:
        if self.name == "refused":
            await asyncio.sleep(0.05)
            raise AuthFailed("401 from /api/events: invalid key", 401)
        try:
            await asyncio.sleep(5)  # a slow ESP, retrying
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("finished")
        return []

    monkeypatch.setattr(LoggingEsp, "drain", drain)
    esp = {"type": "klaviyo", "api_key": "pk_test_123456"}
    config = parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(tmp_path)}},
            "destinations": {"refused": esp, "slow": esp},
            "syncs": {"main": {"source": "events", "destinations": ["refused", "slow"]}},
        }
    )
    engine = SyncEngine(config, StateStore.open(config.state.url))

    async def run() -> list[str]:
        with pytest.raises(FatalRunError, match="401"):
            await engine.run_sync("main")
        return list(seen)  # what had happened to the slow send when the run failed

    assert asyncio.run(run()) == ["cancelled"]


def test_a_run_left_running_by_a_dead_process_is_closed_as_abandoned(
    wired: dict[str, Any],
) -> None:
    # Was: a run killed mid-way (or ended by a second SIGTERM) showed `running` for ever.
    store = wired["store"]
    dead = store.start_run("main")  # its process died without closing it
    other = store.start_run("other")  # another sync's: not this lock's business
    wired["data"].write_bytes(track(1) + b"\n")
    report = asyncio.run(SyncEngine(wired["config"], store).run_sync("main"))
    runs = {r["id"]: r for r in store.runs(limit=10)}
    assert runs[dead]["status"] == "failed" and runs[dead]["ended_at"] is not None
    assert runs[dead]["errors"][0].startswith("abandoned: the process ended")
    assert runs[other]["status"] == "running"
    assert runs[report.run_id]["status"] == "completed"
