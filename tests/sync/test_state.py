"""The state store on SQLite and on a real PostgreSQL: same code, same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Outcome, OutcomeStatus, Record
from mapping.types import RejectedRow
from sync.store.state import BatchCommit, StateStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = StateStore.open(url)
    request.addfinalizer(opened.close)
    return opened


def _record(key: str) -> Record:
    return Record(
        key, "track_event", {"api_key": "pk_secret", "x": 1}, f"f.jsonl:{key}", datetime.now(UTC)
    )


def test_commit_is_atomic_with_bookmark(store: StateStore) -> None:
    run = store.start_run("s")
    outcomes = [
        ("klaviyo", Outcome("a", OutcomeStatus.ACKNOWLEDGED, _record("a"))),
        ("klaviyo", Outcome("b", OutcomeStatus.REJECTED, _record("b"), reason="bad email")),
    ]
    rejects = [
        RejectedRow(
            "f.jsonl:2",
            "properties.email",
            "bad email",
            "destination",
            {"api_key": "pk_secret"},
            "klaviyo",
            "b",
        )
    ]
    store.commit_batch(BatchCommit(run, "s", "src", {"offset": 2}, outcomes, rejects, {"read": 2}))
    assert store.get_bookmark("s", "src") == {"offset": 2}
    assert store.ledger_status("klaviyo", ["a", "b", "c"]) == {"a": "acknowledged"}
    [row] = store.rejects(sync="s")
    assert row["field"] == "properties.email" and row["reason"] == "bad email"
    assert row["payload"] == {"api_key": "[secure]"}
    store.finish_run(run, "completed", api_calls={"POST /api/events": 3})
    [record] = store.runs(sync="s")
    assert record["counts"] == {"read": 2} and record["status"] == "completed"
    assert record["api_calls"] == {"POST /api/events": 3}


def test_pending_then_acknowledged(store: StateStore) -> None:
    run = store.start_run("s")
    store.mark_pending(run, "s", "mailchimp", [_record("e1"), _record("e2")])
    assert store.ledger_status("mailchimp", ["e1", "e2"]) == {"e1": "pending", "e2": "pending"}
    store.commit_batch(
        BatchCommit(
            run,
            "s",
            "src",
            None,
            [("mailchimp", Outcome("e1", OutcomeStatus.ACKNOWLEDGED, _record("e1")))],
        )
    )
    assert store.ledger_status("mailchimp", ["e1", "e2"]) == {"e1": "acknowledged", "e2": "pending"}


def test_lock_excludes_and_expires(store: StateStore) -> None:
    assert store.acquire_lock("sync:a", "one", timedelta(minutes=5))
    assert not store.acquire_lock("sync:a", "two", timedelta(minutes=5))
    assert store.acquire_lock("sync:a", "one", timedelta(minutes=5))  # re-entrant for its holder
    store.release_lock("sync:a", "one")
    assert store.acquire_lock("sync:a", "two", timedelta(seconds=-1))  # already expired
    assert store.acquire_lock("sync:a", "three", timedelta(minutes=5))  # dead holder taken over


def test_ledger_lookup_in_chunks(store: StateStore) -> None:
    run = store.start_run("s")
    outcomes = [
        ("k", Outcome(str(i), OutcomeStatus.ACKNOWLEDGED, _record(str(i)))) for i in range(1200)
    ]
    store.commit_batch(BatchCommit(run, "s", "src", None, outcomes))
    found = store.ledger_status("k", [str(i) for i in range(0, 2400, 2)])
    assert len(found) == 600
