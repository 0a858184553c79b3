"""batch_operations: operations shape, results archive, per-row outcomes of a backfill."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from typing import Any

import httpx

from connectors.base import OutcomeStatus
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import ApiRequest, batch_operations
from tests.connectors.mailchimp.mc_testkit import (
    Recorder,
    identify,
    problem,
    run,
    settings,
    track,
    validate_body,
)


def archive(results: list[dict[str, Any]], per_file: int = 2) -> bytes:
    """A results archive as Mailchimp builds it: a folder of JSON arrays."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("b1")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for part, start in enumerate(range(0, len(results), per_file)):
            data = json.dumps(results[start : start + per_file]).encode()
            info = tarfile.TarInfo(f"b1/{part}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_operation_body_is_a_json_string_and_the_batch_validates() -> None:
    op = batch_operations.operation(
        ApiRequest(
            "PUT",
            "/lists/l/members/h",
            {"email_address": "a@example.com"},
            {"skip_merge_validation": "true"},
        ),
        "m1:upsert_member",
    )
    assert op == {
        "method": "PUT",
        "path": "/lists/l/members/h",
        "operation_id": "m1:upsert_member",
        "params": {"skip_merge_validation": "true"},
        "body": '{"email_address":"a@example.com"}',
    }
    request = batch_operations.build_request([op])
    assert validate_body(request.method, request.path, request.json) == []


def test_archive_results_are_read_by_operation_id() -> None:
    data = archive(
        [
            {"status_code": 200, "operation_id": "a", "response": '{"id":"x"}'},
            {
                "status_code": 400,
                "operation_id": "b",
                "response": json.dumps(
                    {"title": "Member In Compliance State", "detail": "b is in a compliance state"}
                ),
            },
            {"status_code": 204, "operation_id": "c", "response": ""},
        ]
    )
    results = batch_operations.parse_archive(data)
    assert results["a"].ok and results["c"].ok
    assert results["b"].detail() == ("Member In Compliance State: b is in a compliance state", None)


async def test_a_backfill_goes_through_batches_and_each_row_gets_its_outcome() -> None:
    batches: dict[str, list[dict[str, Any]]] = {}
    polls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/batches"):
            batch_id = f"b{len(batches) + 1}"
            batches[batch_id] = json.loads(request.content)["operations"]
            return httpx.Response(200, json={"id": batch_id, "status": "pending"})
        if request.method == "GET" and "/batches/" in path:
            batch_id = path.rsplit("/", 1)[1]
            polls.append(batch_id)
            return httpx.Response(
                200,
                json={
                    "id": batch_id,
                    "status": "finished",
                    "response_body_url": f"https://results.example/{batch_id}.tar.gz",
                },
            )
        if path.endswith(".tar.gz"):
            ops = batches[path.rsplit("/", 1)[1].removesuffix(".tar.gz")]
            results = []
            for op in ops:
                bad = "bad@" in op.get("body", "")
                results.append(
                    {
                        "status_code": 400 if bad else 200,
                        "operation_id": op["operation_id"],
                        "response": json.dumps({"title": "Invalid Resource", "detail": "refused"})
                        if bad
                        else "{}",
                    }
                )
            return httpx.Response(200, content=archive(results))
        if request.method == "POST" and path.endswith("/events"):
            return httpx.Response(204)  # the later, direct flush
        return problem(404, "Resource Not Found", path)

    recorder = Recorder(answer)
    s = settings(
        batch={
            "operations_threshold": 3,
            "max_records": 3,
            "poll_seconds": 0.01,
            "max_age_seconds": 60,
        }
    )
    dest = MailchimpDestination("mc", s, transport=recorder.transport())
    # The first three records fill a flush that goes through /batches; the fourth is a
    # later, direct flush whose event waits for a@example.com's batched upsert.
    _, outcomes = await asyncio.wait_for(
        run(
            dest,
            identify("a@example.com", message_id="i1"),
            identify("bad@example.com", message_id="i2"),
            track("a@example.com", "Viewed Product", message_id="t1", sku="G"),
            track("a@example.com", "Viewed Product", message_id="t2", sku="H"),
        ),
        timeout=10,
    )
    status = {o.key: o.status for o in outcomes}
    assert status == {
        "i1:upsert_member": OutcomeStatus.ACKNOWLEDGED,
        "i2:upsert_member": OutcomeStatus.REJECTED,
        "t1:member_event": OutcomeStatus.ACKNOWLEDGED,
        "t2:member_event": OutcomeStatus.ACKNOWLEDGED,
    }
    # upserts first, events in a later batch (an event needs its member)
    assert [op["method"] for op in batches["b1"]] == ["PUT", "PUT"]
    assert [op["path"].rsplit("/", 1)[1] for op in batches["b2"]] == ["events"]
    assert (
        "Authorization"
        not in next(r for r in recorder.requests if r.url.path.endswith(".tar.gz")).headers
    )
    await dest.aclose()
