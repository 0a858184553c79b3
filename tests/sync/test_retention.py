"""State store retention: what is pruned, what never is, when runs prune, and the upgrade."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.base import Outcome, OutcomeStatus, Record
from mapping.types import RejectedRow
from sync import engine as engine_module
from sync import scheduler
from sync.cli import app
from sync.config import Config, ConfigError, parse_config
from sync.engine import SyncEngine
from sync.store import schema
from sync.store.migrations import STEPS, current_version
from sync.store.retention import Pruned, Retention, prune
from sync.store.state import BatchCommit, StateStore
from tests.sync.fakes import LinesSource, LoggingEsp, track

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
V2_DUMP = Path(__file__).parent / "state_v2_sqlite.sql"
INDEXES = {"ix_sent_ledger_acknowledged_at", "ix_rejected_rows_created_at", "ix_runs_ended_at"}


def _record(key: str) -> Record:
    return Record(key, "track_event", {}, f"events.jsonl:{key}", NOW)


def _acknowledge(store: StateStore, run_id: int, keys: list[str], dest: str = "esp") -> None:
    outcomes = [(dest, Outcome(k, OutcomeStatus.ACKNOWLEDGED, _record(k))) for k in keys]
    store.commit_batch(BatchCommit(run_id, "main", "events", None, outcomes))


def _age(store: StateStore, table: sa.Table, column: str, days: float, **where: Any) -> None:
    """Backdate rows of `table` (those matching `where`) by `days`."""
    condition = sa.and_(sa.true(), *(table.c[name].in_(vals) for name, vals in where.items()))
    with store.engine.begin() as conn:
        conn.execute(sa.update(table).where(condition).values({column: NOW - days * DAY}))


def _seed(store: StateStore) -> dict[str, int]:
    """Old and recent rows in the three tables; returns the run ids."""
    old_run = store.start_run("main")
    _acknowledge(store, old_run, [f"old{i}" for i in range(7)] + ["recent"])
    _age(store, schema.sent_ledger, "acknowledged_at", 40, key=[f"old{i}" for i in range(7)])
    store.mark_pending(old_run, "main", "esp", [_record("pending")])  # never acknowledged
    _acknowledge(store, old_run, ["old0"], dest="other")  # another destination, recent
    rejects = [RejectedRow(f"events.jsonl:{i}", "email", "bad", payload={}) for i in range(3)]
    store.commit_batch(BatchCommit(old_run, "main", "events", None, rejects=rejects))
    store.finish_run(old_run, "completed")
    ids = sorted(r["id"] for r in store.rejects(include_retried=True))
    store.mark_retried(ids[:1])
    _age(store, schema.rejected_rows, "created_at", 40, id=ids[:2])  # one retried, one not
    _age(store, schema.runs, "ended_at", 40, id=[old_run])
    stuck = store.start_run("gone")  # left `running` by a process that died long ago
    _age(store, schema.runs, "started_at", 400, id=[stuck])
    recent = store.start_run("main")
    store.finish_run(recent, "completed")
    quarterly = [store.start_run("quarterly") for _ in range(2)]
    for run_id in quarterly:
        store.finish_run(run_id, "completed")
    _age(store, schema.runs, "ended_at", 200, id=quarterly)
    # The latest run of each sync stays however old (`schedule` reads it after a restart).
    return {"old": old_run, "stuck": stuck, "recent": recent, "last_quarterly": quarterly[1]}


RETENTION = Retention(sent_ledger_days=30, rejects_days=30, runs_days=30)


def _check_pruned(store: StateStore, pruned: Pruned, runs: dict[str, int]) -> None:
    assert pruned.counts == {"sent_ledger": 7, "rejects": 2, "runs": 2}
    assert pruned.complete
    keys = ["recent", "pending"] + [f"old{i}" for i in range(7)]
    assert store.ledger_status("esp", keys) == {"recent": "acknowledged", "pending": "pending"}
    assert store.ledger_status("other", ["old0"]) == {"old0": "acknowledged"}
    [reject] = store.rejects(include_retried=True)  # the recent one
    assert reject["source_ref"] == "events.jsonl:2"
    kept = {runs["stuck"], runs["recent"], runs["last_quarterly"]}
    assert {r["id"] for r in store.runs()} == kept


def test_prune_deletes_exactly_the_old_acknowledged_rows(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    runs = _seed(store)
    _check_pruned(store, prune(store, RETENTION), runs)
    assert prune(store, RETENTION).counts == {"sent_ledger": 0, "rejects": 0, "runs": 0}


def test_schedule_still_sees_a_missed_tick_of_a_rare_sync_after_pruning(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    run_id = store.start_run("main")  # a quarterly sync's last run, 120 days ago
    store.finish_run(run_id, "completed")
    _age(store, schema.runs, "started_at", 120, id=[run_id])
    _age(store, schema.runs, "ended_at", 120, id=[run_id])
    prune(store, Retention(runs_days=90))
    engine: Any = SimpleNamespace(store=store)
    # Restarted after the quarter's tick: it runs now, rather than a quarter late.
    assert scheduler._missed_while_down(engine, "main", "0 0 1 */3 *", NOW)


def test_zero_keeps_a_table_forever(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    _seed(store)
    pruned = prune(store, Retention(sent_ledger_days=0, rejects_days=30, runs_days=0))
    assert pruned.counts == {"rejects": 2}
    assert pruned.cutoffs["sent_ledger"] is None and pruned.cutoffs["runs"] is None
    assert len(store.ledger_status("esp", [f"old{i}" for i in range(7)])) == 7


def test_prune_works_in_chunks_of_one_transaction_each(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    run_id = store.start_run("main")
    _acknowledge(store, run_id, [f"k{i}" for i in range(10)])
    _age(store, schema.sent_ledger, "acknowledged_at", 40, key=[f"k{i}" for i in range(10)])
    commits: list[int] = []
    sa.event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    only = Retention(sent_ledger_days=30)
    first = prune(store, only, chunk=3, budget_s=0)  # budget spent: one chunk, then stop
    assert first.counts == {"sent_ledger": 3} and not first.complete
    assert len(commits) == 1
    rest = prune(store, only, chunk=3)
    assert rest.counts == {"sent_ledger": 7} and rest.complete
    assert len(commits) == 1 + 3  # 3 + 3 + 1 rows, one transaction each
    assert store.ledger_status("esp", [f"k{i}" for i in range(10)]) == {}


# runs prune -----------------------------------------------------------------------------


def _config(tmp_path: Path, **state: Any) -> Config:
    return parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db", **state},
            "sources": {"events": {"type": "segment", "path": str(tmp_path)}},
            "destinations": {"esp": {"type": "klaviyo", "api_key": "pk_test_123456"}},
            "syncs": {"main": {"source": "events", "destinations": ["esp"]}},
        }
    )


@pytest.fixture
def wired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    data, log = tmp_path / "events.jsonl", tmp_path / "esp.log"
    data.touch()
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: LinesSource(name, data)
    )
    monkeypatch.setattr(
        engine_module, "build_destination", lambda name, s, t=None: LoggingEsp(name, log)
    )
    config = _config(tmp_path, sent_ledger_retention_days=30)
    return {"data": data, "log": log, "config": config, "store": StateStore.open(config.state.url)}


def _append(data: Path, *lines: bytes) -> None:
    with data.open("ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


def test_a_redelivered_message_is_skipped_within_retention_and_resent_after(
    wired: dict[str, Any],
) -> None:
    data, log, store, config = wired["data"], wired["log"], wired["store"], wired["config"]
    _append(data, track(1))
    asyncio.run(SyncEngine(config, store).run_sync("main"))
    _age(store, schema.sent_ledger, "acknowledged_at", 29, key=["m1"])
    _append(data, track(1))  # re-delivered 29 days later: still in the ledger
    report = asyncio.run(SyncEngine(config, store).run_sync("main"))
    assert report.counts["esp.already_sent"] == 1
    assert "pruned.sent_ledger" not in report.counts
    assert log.read_text().split() == ["m1"]

    _age(store, schema.sent_ledger, "acknowledged_at", 31, key=["m1"])
    pruning = asyncio.run(SyncEngine(config, store).run_sync("main"))
    assert pruning.counts["pruned.sent_ledger"] == 1
    assert store.runs(limit=1)[0]["counts"]["pruned.sent_ledger"] == 1  # `espbridge runs`
    _append(data, track(1))  # re-delivered after the retention: sent again (documented)
    again = asyncio.run(SyncEngine(config, store).run_sync("main"))
    assert again.counts["esp.acknowledged"] == 1
    assert log.read_text().split() == ["m1", "m1"]


def test_a_process_prunes_at_most_once_an_hour_and_not_in_dry_runs(
    wired: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, store, config = wired["data"], wired["store"], wired["config"]
    _append(data, track(1), track(2))
    engine = SyncEngine(config, store)
    dry = asyncio.run(SyncEngine(config, store).run_sync("main", dry_run=True))
    assert not any(k.startswith("pruned.") for k in dry.counts)
    asyncio.run(engine.run_sync("main"))  # prunes (nothing due yet)
    _age(store, schema.sent_ledger, "acknowledged_at", 31, key=["m1"])
    assert "pruned.sent_ledger" not in asyncio.run(engine.run_sync("main")).counts
    assert store.ledger_status("esp", ["m1"]) == {"m1": "acknowledged"}
    clock = engine_module.time.monotonic() + engine_module.PRUNE_EVERY_S + 1
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: clock)
    assert asyncio.run(engine.run_sync("main")).counts["pruned.sent_ledger"] == 1


def test_pruned_rejects_are_not_counted_as_rejects_of_the_run(wired: dict[str, Any]) -> None:
    store, config = wired["store"], wired["config"].model_copy(deep=True)
    run_id = store.start_run("main")
    store.commit_batch(BatchCommit(run_id, "main", "events", None, rejects=[_reject()]))
    _age(store, schema.rejected_rows, "created_at", 91)  # the default retention is 90 days
    report = asyncio.run(SyncEngine(config, store).run_sync("main"))
    assert report.counts["pruned.rejects"] == 1 and report.rejected == 0
    assert store.rejects(include_retried=True) == []


def _reject() -> RejectedRow:
    return RejectedRow("events.jsonl:1", "email", "bad", payload={})


def test_a_failed_prune_leaves_the_run_completed(
    wired: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Pruned:
        raise RuntimeError("timeout on postgresql://espbridge:hunter2secret@db.internal/x")

    monkeypatch.setattr(engine_module, "prune", broken)
    _append(wired["data"], track(1))
    report = asyncio.run(SyncEngine(wired["config"], wired["store"]).run_sync("main"))
    assert report.status == "completed" and report.counts["esp.acknowledged"] == 1
    assert "pruning failed, retried later" in caplog.text
    assert "hunter2secret" not in caplog.text


# settings and command -------------------------------------------------------------------


def test_state_settings_defaults_and_validation(tmp_path: Path) -> None:
    state = _config(tmp_path).state
    assert (state.sent_ledger_retention_days, state.rejects_retention_days) == (90, 90)
    assert state.runs_retention_days == 90
    with pytest.raises(ConfigError, match=r"state\.runs_retention_days"):
        _config(tmp_path, runs_retention_days=-1)


def test_prune_command_prints_what_it_deleted(tmp_path: Path) -> None:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    _seed(store)
    store.close()
    config = tmp_path / "espbridge.toml"
    config.write_text(
        f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\nsent_ledger_retention_days = 30\n'
        "rejects_retention_days = 30\nruns_retention_days = 0\n"
        # `prune` reads only [state]: an unset variable elsewhere does not stop it.
        '[destinations.esp]\ntype = "klaviyo"\napi_key = "${UNSET_FOR_PRUNE_TEST}"\n'
    )
    result = CliRunner().invoke(app, ["prune", "-c", str(config), "-o", "json"])
    assert result.exit_code == 0, result.output
    tables = json.loads(result.stdout)["tables"]
    assert tables["sent_ledger"]["deleted"] == 7 and tables["rejects"]["deleted"] == 2
    assert tables["runs"] == {"deleted": 0, "retention_days": 0, "before": None}
    text = CliRunner().invoke(app, ["prune", "-c", str(config)])
    assert text.exit_code == 0, text.output
    assert "sent_ledger: deleted 0 rows older than 30 days (before " in text.stdout
    assert "runs: kept forever (retention 0 days)" in text.stdout


# upgrade --------------------------------------------------------------------------------


def _indexes(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    tables = ("sent_ledger", "rejected_rows", "runs")
    return {str(i["name"]) for t in tables for i in inspector.get_indexes(t)}


def test_a_store_of_the_previous_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as con:  # what the previous release created, with data
        con.executescript(V2_DUMP.read_text())
        con.execute(
            "INSERT INTO sent_ledger VALUES ('esp', 'old', 'track_event', 'acknowledged', "
            "'main', 1, 'f:1', ?)",
            ((NOW - 40 * DAY).strftime("%Y-%m-%d %H:%M:%S.%f"),),
        )
        con.execute(
            "INSERT INTO sent_ledger VALUES ('esp', 'new', 'track_event', 'acknowledged', "
            "'main', 1, 'f:2', ?)",
            (NOW.strftime("%Y-%m-%d %H:%M:%S.%f"),),
        )
    store = StateStore.open(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        assert current_version(conn) == len(STEPS) == 3
    assert _indexes(store.engine) >= INDEXES
    assert prune(store, Retention(sent_ledger_days=30)).counts == {"sent_ledger": 1}
    assert store.ledger_status("esp", ["old", "new"]) == {"new": "acknowledged"}


# PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    """A store in a database of its own on the session's PostgreSQL server."""
    name = f"retention_{datetime.now(UTC):%H%M%S%f}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    store = StateStore.open(url)
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


@pytest.mark.postgres
def test_prune_on_postgres(pg_store: StateStore) -> None:
    runs = _seed(pg_store)
    first = prune(pg_store, RETENTION, chunk=2)  # tuple-keyed chunks on the ledger
    _check_pruned(pg_store, first, runs)


@pytest.mark.postgres
def test_a_postgres_store_of_the_previous_schema_is_upgraded(pg_store: StateStore) -> None:
    with pg_store.engine.begin() as conn:  # back to version 2: the same tables, no indexes
        for index in INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {index}")
        conn.execute(sa.delete(schema.schema_version).where(schema.schema_version.c.version > 2))
    assert not INDEXES & _indexes(pg_store.engine)
    upgraded = StateStore.open(pg_store.engine.url.render_as_string(hide_password=False))
    try:
        assert _indexes(upgraded.engine) >= INDEXES
        with upgraded.engine.connect() as conn:
            assert current_version(conn) == 3
    finally:
        upgraded.close()
