"""Batch subscribe (`POST /lists/{id}`) and batch operations (`/batches`) with results archive."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import httpx

from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import LIST_ID, member_hash, put_member


def _subscribe(
    mc: httpx.Client, members: list[dict[str, Any]], update_existing: bool = False, **params: str
) -> httpx.Response:
    body = {"members": members, "update_existing": update_existing}
    return mc.post(f"/lists/{LIST_ID}", json=body, params=params)


def test_batch_subscribe_creates_updates_and_reports_errors(mc: httpx.Client) -> None:
    put_member(mc, "old@example.com", merge_fields={"FNAME": "Old"})
    put_member(mc, "gone@example.com", "unsubscribed")
    members = [
        {
            "email_address": "new@example.com",
            "status": "subscribed",
            "merge_fields": {"FNAME": "N"},
        },
        {
            "email_address": "old@example.com",
            "status": "subscribed",
            "merge_fields": {"LNAME": "L"},
        },
        {"email_address": "gone@example.com", "status": "subscribed"},
        {"email_address": "broken", "status": "subscribed"},
        {
            "email_address": "bad-merge@example.com",
            "status": "subscribed",
            "merge_fields": {"BIRTHDAY": "x"},
        },
    ]
    body = _subscribe(mc, members, update_existing=True).json()
    assert [m["email_address"] for m in body["new_members"]] == ["new@example.com"]
    assert [m["email_address"] for m in body["updated_members"]] == ["old@example.com"]
    assert body["updated_members"][0]["merge_fields"]["FNAME"] == "Old"
    assert (body["total_created"], body["total_updated"], body["error_count"]) == (1, 1, 3)
    errors = {e["email_address"]: e for e in body["errors"]}
    assert "compliance state" in errors["gone@example.com"]["error"]
    assert errors["broken"]["error_code"] == "ERROR_GENERIC"
    assert errors["bad-merge@example.com"]["field"] == "BIRTHDAY"


def test_batch_subscribe_without_update_existing_reports_contact_exists(mc: httpx.Client) -> None:
    put_member(mc, "old@example.com", "pending")
    body = _subscribe(mc, [{"email_address": "old@example.com", "status": "subscribed"}]).json()
    assert body["error_count"] == 1
    assert body["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert mc.get(f"/lists/{LIST_ID}/members/old@example.com").json()["status"] == "pending"


def test_batch_subscribe_limits_and_duplicates(mc: httpx.Client) -> None:
    many = [{"email_address": f"u{i}@example.com", "status": "subscribed"} for i in range(501)]
    too_many = _subscribe(mc, many)
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["field"] == "members"
    assert _subscribe(mc, many[:500]).json()["total_created"] == 500
    dupes = [{"email_address": "d@example.com", "status": "subscribed"}] * 2
    assert _subscribe(mc, dupes).json()["error_count"] == 1
    skipped = _subscribe(mc, dupes, update_existing=True, skip_duplicate_check="true").json()
    assert (skipped["error_count"], skipped["total_updated"]) == (0, 1)


def test_partial_fault_fails_some_members_realistically(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    mc_server.set_faults("partial@/3.0/lists/*=1:0.5")
    members = [{"email_address": f"p{i}@example.com", "status": "subscribed"} for i in range(10)]
    body = _subscribe(mc, members).json()
    assert body["error_count"] == 5
    assert body["total_created"] == 5
    assert all("not allowing more signups" in e["error"] for e in body["errors"])
    stored = mc_server.state()["mailchimp"]["lists"][LIST_ID]["members"]
    for error in body["errors"]:
        assert member_hash(error["email_address"]) not in stored


def _op(method: str, path: str, body: Any = None, op_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"method": method, "path": path}
    if body is not None:
        op["body"] = json.dumps(body)
    if op_id:
        op["operation_id"] = op_id
    return op


def _results(archive: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for info in tar.getmembers():
            if info.isfile():
                handle = tar.extractfile(info)
                assert handle is not None
                out.extend(json.load(handle))
    return out


def test_batch_lifecycle_and_results_archive(mc: httpx.Client, mc_server: SandboxServer) -> None:
    put_member(mc, "gone@example.com", "unsubscribed")
    new_hash = member_hash("new@example.com")
    operations = [
        _op("PUT", f"/lists/{LIST_ID}/members/{new_hash}",
            {"email_address": "new@example.com", "status_if_new": "subscribed"}, "row-1"),
        _op("POST", f"/lists/{LIST_ID}/members/{new_hash}/events", {"name": "signed_up"}, "row-2"),
        _op("PUT", f"/lists/{LIST_ID}/members/{member_hash('gone@example.com')}",
            {"email_address": "gone@example.com", "status": "subscribed"}, "row-3"),
        _op("GET", f"/lists/{LIST_ID}/merge-fields", None, "row-4"),
        {**_op("GET", f"/lists/{LIST_ID}/members", None, "row-5"), "params": {"count": 1}},
        {"method": "PUT", "path": f"/lists/{LIST_ID}/members/{new_hash}", "body": "{nope"},
    ]  # fmt: skip
    created = mc.post("/batches", json={"operations": operations})
    assert created.status_code == 200
    batch = created.json()
    assert (batch["status"], batch["total_operations"], batch["response_body_url"]) == (
        "pending",
        6,
        "",
    )
    assert mc.get(f"/lists/{LIST_ID}/members/{new_hash}").status_code == 404
    mc_server.advance_clock(1.2)
    assert mc.get(f"/batches/{batch['id']}").json()["status"] == "started"
    mc_server.advance_clock(1.0)
    done = mc.get(f"/batches/{batch['id']}").json()
    assert done["status"] == "finished"
    assert (done["finished_operations"], done["errored_operations"]) == (6, 2)
    assert done["completed_at"]
    archive = httpx.get(done["response_body_url"])
    assert archive.status_code == 200
    results = _results(archive.content)
    assert [r["status_code"] for r in results] == [200, 204, 400, 200, 200, 400]
    assert [r["operation_id"] for r in results][:5] == ["row-1", "row-2", "row-3", "row-4", "row-5"]
    assert json.loads(results[0]["response"])["email_address"] == "new@example.com"
    assert results[1]["response"] == ""
    assert json.loads(results[2]["response"])["title"] == "Member In Compliance State"
    assert json.loads(results[4]["response"])["total_items"] == 2
    assert len(json.loads(results[4]["response"])["members"]) == 1
    assert json.loads(results[5]["response"])["title"] == "JSON Parse Error"
    state = mc_server.state()["mailchimp"]["lists"][LIST_ID]["members"]
    assert [e["name"] for e in state[new_hash]["events"]] == ["signed_up"]


def test_malformed_batches_are_rejected(mc: httpx.Client) -> None:
    assert mc.post("/batches", json={}).status_code == 400
    bad_method = mc.post("/batches", json={"operations": [{"method": "HEAD", "path": "/ping"}]})
    assert bad_method.json()["errors"][0]["field"] == "operations.0.method"
    object_body = {"method": "PUT", "path": "/ping", "body": {"not": "a string"}}
    response = mc.post("/batches", json={"operations": [object_body]})
    assert (
        response.json()["errors"][0]["message"] == "Schema describes string, object found instead"
    )
    assert mc.get("/batches/nope").status_code == 404


def test_batch_list_delete_and_partial_fault(mc: httpx.Client, mc_server: SandboxServer) -> None:
    mc_server.set_faults("partial@/3.0/batches=1:0.5")
    ops = [
        _op("PUT", f"/lists/{LIST_ID}/members/{member_hash(f'b{i}@example.com')}",
            {"email_address": f"b{i}@example.com", "status_if_new": "subscribed"}, f"r{i}")
        for i in range(4)
    ]  # fmt: skip
    batch = mc.post("/batches", json={"operations": ops}).json()
    other = mc.post("/batches", json={"operations": ops[:1]}).json()
    assert mc.get("/batches").json()["total_items"] == 2
    assert mc.delete(f"/batches/{other['id']}").status_code == 204
    mc_server.advance_clock(3)
    done = mc.get(f"/batches/{batch['id']}").json()
    assert done["errored_operations"] == 2
    results = _results(httpx.get(done["response_body_url"]).content)
    failed = [r for r in results if r["status_code"] == 400]
    assert len(failed) == 2
    assert "not allowing more signups" in json.loads(failed[0]["response"])["detail"]
    members = mc_server.state()["mailchimp"]["lists"][LIST_ID]["members"]
    assert len(members) == 2
