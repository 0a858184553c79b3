"""Batch operations: `POST /batches`, status polling, and the gzipped results archive.

A batch is `pending` for 1 s and `started` for 1 s more (ESP time, divided by
`time_scale`), then its operations run one after another through the same
operation table as direct calls and it becomes `finished`. Progress is computed
lazily whenever the account is touched, so no background task is needed.
The results archive is a tar.gz of JSON arrays of
`{"status_code", "operation_id", "response"}` where `response` is a JSON string
(third-party evidence, shared/notes/esp-api-contracts.md §2.5); it is served at
`/_sandbox/mailchimp/batch-results/{batch_id}.tar.gz`, outside `/3.0` as
Mailchimp serves it from a separate storage host without API-key auth.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import orjson

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import MailchimpError
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply, parse_json, problem_reply
from esp_sandbox.mailchimp.store import Batch, BatchResult, MailchimpStore

PENDING_SECONDS = 1.0
STARTED_SECONDS = 1.0
MAX_PENDING_BATCHES = 500
RESULTS_PER_FILE = 500
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRITE_PATH_SUFFIXES = ("/members", "/events", "/tags")


def _check_operations(body: dict[str, Any]) -> list[dict[str, Any]]:
    operations = body.get("operations")
    if not isinstance(operations, list) or not operations:
        raise errors.invalid_field("operations", "Required fields were not provided: operations")
    for index, op in enumerate(operations):
        if not isinstance(op, dict):
            raise errors.schema_mismatch(f"operations.{index}", "object", op)
        if op.get("method") not in METHODS:
            raise errors.invalid_field(
                f"operations.{index}.method",
                f"Data presented is not one of the accepted values: {', '.join(METHODS)}.",
            )
        if not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
            raise errors.invalid_field(f"operations.{index}.path", "Schema describes string")
        for name, kind in (("body", str), ("operation_id", str), ("params", dict)):
            if name in op and op[name] is not None and not isinstance(op[name], kind):
                expected = "object" if kind is dict else "string"
                raise errors.schema_mismatch(f"operations.{index}.{name}", expected, op[name])
    return operations


class BatchRunner:
    """Creates, advances and renders batches."""

    def __init__(self, store: MailchimpStore, table: OperationTable) -> None:
        self.store = store
        self.table = table

    def results_url(self, batch: Batch) -> str:
        """Where the finished batch's archive is served."""
        return f"{batch.base_url.rstrip('/')}/_sandbox/mailchimp/batch-results/{batch.id}.tar.gz"

    def batch_json(self, batch: Batch) -> dict[str, Any]:
        """A batch as `GET /batches/{id}` renders it."""
        done = batch.status == "finished"
        return {
            "id": batch.id,
            "status": batch.status,
            "total_operations": len(batch.operations),
            "finished_operations": len(batch.results) if done else 0,
            "errored_operations": sum(1 for r in batch.results if r.status_code >= 400),
            "submitted_at": batch.submitted_at,
            "completed_at": batch.completed_at,
            "response_body_url": self.results_url(batch) if done else "",
            "_links": [],
        }

    def advance(self) -> None:
        """Move every batch forward to where the clock says it should be, in submit order."""
        now = self.store.ctx.clock.monotonic()
        clock = self.store.ctx.clock
        with self.store.lock:
            if any(b.status == "finalizing" for b in self.store.batches.values()):
                return  # one batch runs at a time; this call comes from inside it
            for batch in list(self.store.batches.values()):
                if batch.status in ("finished", "finalizing"):
                    continue
                age = now - batch.submitted_mono
                if age >= clock.scaled(PENDING_SECONDS + STARTED_SECONDS):
                    self._execute(batch)
                elif age >= clock.scaled(PENDING_SECONDS):
                    batch.status = "started"

    def _execute(self, batch: Batch) -> None:
        batch.status = "finalizing"  # an operation that polls /batches must not re-run this one
        failing = set(self.store.ctx.faults.partial_items("/3.0/batches", len(batch.operations)))
        for index, op in enumerate(batch.operations):
            if index in failing:
                reply = problem_reply(self.store, _injected_failure(op))
            else:
                reply = self._run_one(batch, op)
            response = "" if reply.body is None else orjson.dumps(reply.body).decode()
            batch.results.append(BatchResult(reply.status, op.get("operation_id"), response))
        batch.status = "finished"
        batch.completed_at = self.store.now()
        batch.archive = build_archive(batch)

    def _run_one(self, batch: Batch, op: dict[str, Any]) -> Reply:
        try:
            body = parse_json(op.get("body"))
        except MailchimpError as exc:
            return problem_reply(self.store, exc)
        path = op["path"].split("?", 1)[0].rstrip("/") or "/"
        call = Call(
            method=op["method"],
            path=path,
            path_params={},
            query={k: str(v) for k, v in (op.get("params") or {}).items()},
            body=body,
            base_url=batch.base_url,
            raw_path="/3.0" + path,
        )
        return self.table.run(self.store, call)

    def install(self, table: OperationTable) -> None:
        """Register the batch operations."""
        table.add("POST", "/batches", self._create)
        table.add("GET", "/batches", self._list)
        table.add("GET", "/batches/{batch_id}", self._get)
        table.add("DELETE", "/batches/{batch_id}", self._delete)

    def _create(self, call: Call) -> Reply:
        operations = _check_operations(call.object_body())
        self.advance()
        pending = sum(1 for b in self.store.batches.values() if b.status != "finished")
        if pending >= MAX_PENDING_BATCHES:
            raise MailchimpError(
                429,
                "Too Many Requests",
                f"You have more than {MAX_PENDING_BATCHES} pending batches.",
            )
        batch = Batch(
            id=self.store.new_hex(10),
            operations=[dict(op) for op in operations],
            submitted_at=self.store.now(),
            submitted_mono=self.store.ctx.clock.monotonic(),
            base_url=call.base_url,
        )
        self.store.batches[batch.id] = batch
        return Reply(200, self.batch_json(batch))

    def _list(self, call: Call) -> Reply:
        self.advance()
        batches = list(self.store.batches.values())
        return Reply(
            200,
            {
                "batches": [self.batch_json(b) for b in call.page(batches)],
                "total_items": len(batches),
                "_links": [],
            },
        )

    def _get(self, call: Call) -> Reply:
        self.advance()
        batch = self.store.batches.get(call.path_params["batch_id"])
        if batch is None:
            raise errors.not_found()
        return Reply(200, self.batch_json(batch))

    def _delete(self, call: Call) -> Reply:
        if self.store.batches.pop(call.path_params["batch_id"], None) is None:
            raise errors.not_found()
        return Reply(204)


def _injected_failure(op: dict[str, Any]) -> MailchimpError:
    path = str(op.get("path", ""))
    if op.get("method") in ("PUT", "POST") and "/members" in path:
        return errors.invalid(
            "This contact has signed up to a lot of lists very recently; "
            "we're not allowing more signups for now"
        )
    return MailchimpError(
        500,
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    )


def build_archive(batch: Batch) -> bytes:
    """The gzipped tar of result files, `RESULTS_PER_FILE` operations per JSON file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        folder = tarfile.TarInfo(f"{batch.id}")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        archive.addfile(folder)
        for part, start in enumerate(range(0, max(len(batch.results), 1), RESULTS_PER_FILE)):
            chunk = batch.results[start : start + RESULTS_PER_FILE]
            data = orjson.dumps(
                [
                    {
                        "status_code": r.status_code,
                        "operation_id": r.operation_id,
                        "response": r.response,
                    }
                    for r in chunk
                ]
            )
            info = tarfile.TarInfo(f"{batch.id}/{part}.json")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
