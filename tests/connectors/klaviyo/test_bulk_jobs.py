"""Bulk import jobs that never finish, or that fail rows Klaviyo does not name.

Neither may pass as delivered: a job that never finishes stops the run (exit 3) with
nothing acknowledged, and failed rows that cannot be attributed become rejected rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Bookmark, OutcomeStatus, SourceBatch
from connectors.errors import ESPError, JobUnfinished
from sync import engine as engine_module
from sync.config import parse_config
from sync.engine import FatalRunError, SyncEngine
from sync.store.state import StateStore

from .testkit import API_KEY, FakeKlaviyo, destination, message, records_of

FAST: dict[str, Any] = {
    "retry": {"initial_seconds": 0.001, "max_delay_seconds": 0.01},
    "batch": {"job_poll_seconds": 0.001, "job_timeout_seconds": 0.05},
}
PEOPLE = 30  # above bulk_threshold (20): one bulk import job


def _identify(i: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"i-{i}",
        "userId": f"u-{i}",
        "timestamp": "2026-07-20T10:00:00Z",
        "traits": {"email": f"p{i}@example.com"},
    }


def _job(status: str, failed: int = 0) -> dict[str, Any]:
    attributes = {"status": status, "failed_count": failed, "total_count": PEOPLE}
    return {"data": {"type": "profile-bulk-import-job", "id": "job-1", "attributes": attributes}}


def _import_error(detail: str, index: int | None = None, email: str | None = None) -> Any:
    attributes: dict[str, Any] = {"code": "invalid", "title": "Invalid", "detail": detail}
    if index is not None:
        pointer = f"/data/attributes/profiles/data/{index}/attributes/phone_number"
        attributes["source"] = {"pointer": pointer}
    attributes["original_payload"] = {"email": email} if email else {}
    return {"type": "import-error", "id": f"e-{index}-{email}", "attributes": attributes}


def _klaviyo(status: str, failed: int = 0, errors: list[Any] | None = None) -> FakeKlaviyo:
    """Answers a bulk import job with `status` and `failed`, listing `errors`."""

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        path = request.url.path
        if path == "/api/profile-bulk-import-jobs":
            return httpx.Response(202, json=_job("queued"))
        if path == "/api/profile-bulk-import-jobs/job-1":
            return httpx.Response(200, json=_job(status, failed))
        if path == "/api/profile-bulk-import-jobs/job-1/import-errors":
            return httpx.Response(200, json={"data": errors or [], "links": {"self": "x"}})
        return httpx.Response(404)

    return FakeKlaviyo(answer)


async def _run(fake: FakeKlaviyo) -> list[Any]:
    dest = destination(fake, **FAST)
    try:
        for i in range(PEOPLE):
            for record in records_of(dest, _identify(i)):
                await dest.process_record(record)
        outcomes: list[Any] = await dest.drain()
    finally:
        await dest.aclose()
    return outcomes


# A job that never finishes ----------------------------------------------------------


async def test_a_job_that_never_finishes_is_an_esp_error_naming_the_job() -> None:
    with pytest.raises(JobUnfinished, match="bulk import job job-1 did not finish") as caught:
        await _run(_klaviyo("processing"))
    assert isinstance(caught.value, ESPError)  # what the engine ends a run on (exit 3)
    assert not isinstance(caught.value, TimeoutError)
    assert caught.value.job_id == "job-1"


class _Identifies:
    """A source of one batch of identify calls (the engine's side of the contract)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        messages = [message(_identify(i), f"test:{i}") for i in range(PEOPLE)]
        yield SourceBatch(messages, [], {"read": PEOPLE}, read=PEOPLE)

    def check(self) -> str:
        return "ok"


def _engine(tmp_path: Path, fake: FakeKlaviyo) -> tuple[SyncEngine, StateStore]:
    config = parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(tmp_path)}},
            "destinations": {"klaviyo": {"type": "klaviyo", "api_key": API_KEY, **FAST}},
            "syncs": {"main": {"source": "events", "destinations": ["klaviyo"]}},
        }
    )
    store = StateStore.open(config.state.url)
    transports = {"klaviyo": fake.transport()}
    return SyncEngine(config, store, transports=transports), store


def test_through_the_engine_a_job_that_never_finishes_fails_the_run_and_acks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: _Identifies(name)
    )
    engine, store = _engine(tmp_path, _klaviyo("processing"))
    # FatalRunError is what `espbridge run` and `schedule` turn into exit code 3.
    with pytest.raises(FatalRunError, match="bulk import job job-1 did not finish"):
        asyncio.run(engine.run_sync("main"))
    [run] = store.runs(limit=1)
    assert run["status"] == "failed"
    assert store.get_bookmark("main", "events") is None  # read again next run
    keys = [f"profile:i-{i}" for i in range(PEOPLE)]
    assert store.ledger_status("klaviyo", keys) == {}  # nothing acknowledged


# Failed rows the import-errors do not name -------------------------------------------


async def test_failures_that_cannot_be_attributed_reject_the_unnamed_records() -> None:
    # Klaviyo failed 3 rows but lists only one error it lets us match (row 3), plus one
    # whose payload matches no record: 2 failures stay unattributed.
    errors = [
        _import_error("Invalid phone number", index=3),
        _import_error("Invalid email", email="someone-else@example.com"),
    ]
    outcomes = await _run(_klaviyo("complete", failed=3, errors=errors))
    assert len(outcomes) == PEOPLE
    assert all(o.status is OutcomeStatus.REJECTED for o in outcomes)
    by_key = {o.key: o for o in outcomes}
    assert (by_key["profile:i-3"].reason, by_key["profile:i-3"].field) == (
        "Invalid phone number",
        "phone_number",
    )
    reason = by_key["profile:i-0"].reason or ""
    assert reason.startswith(
        "Klaviyo bulk import job job-1 reported 2 failures that could not be attributed "
        "to a record (3 failed in all)"
    )
    assert "may not have been imported" in reason


async def test_a_failed_count_with_no_listed_errors_acknowledges_nothing() -> None:
    outcomes = await _run(_klaviyo("complete", failed=1, errors=[]))
    assert {o.status for o in outcomes} == {OutcomeStatus.REJECTED}
    assert all("reported 1 failure that could not" in (o.reason or "") for o in outcomes)


async def test_failures_all_attributed_reject_only_their_rows() -> None:
    errors = [
        _import_error("Invalid phone number", index=3),
        _import_error("Bad", email="p7@example.com"),
    ]
    outcomes = await _run(_klaviyo("complete", failed=2, errors=errors))
    rejected = sorted(o.key for o in outcomes if o.status is OutcomeStatus.REJECTED)
    assert rejected == ["profile:i-3", "profile:i-7"]
    assert sum(o.status is OutcomeStatus.ACKNOWLEDGED for o in outcomes) == PEOPLE - 2


@pytest.mark.parametrize("count", ["2", -1, 1.5, True])
async def test_an_unreadable_failed_count_acknowledges_nothing(count: Any) -> None:
    from connectors.errors import MalformedResponse

    with pytest.raises(MalformedResponse, match="failed_count"):
        await _run(_klaviyo("complete", failed=count))


def test_through_the_engine_unattributed_failures_are_rejected_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: _Identifies(name)
    )
    engine, store = _engine(tmp_path, _klaviyo("complete", failed=1, errors=[]))
    report = asyncio.run(engine.run_sync("main"))
    assert report.status == "completed"
    rejects = store.rejects(sync="main")
    assert len(rejects) == PEOPLE
    assert all("job job-1 reported 1 failure that" in r["reason"] for r in rejects)
