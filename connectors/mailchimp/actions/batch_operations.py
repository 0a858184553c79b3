"""Batch operations for large backfills: `POST /batches`, poll, read the results archive.

Each operation carries the record key as `operation_id`. When the batch is
`finished`, `response_body_url` points at a tar.gz whose JSON files each hold an
array of `{status_code, operation_id, response}` (`response` is itself JSON text);
every operation's result becomes that record's outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.base import Outcome, Record
from connectors.errors import JobUnfinished, MalformedResponse, RejectedPayload
from connectors.http import gather_or_cancel
from connectors.mailchimp.actions import (
    ApiRequest,
    BatchLimits,
    audience_of,
    journey_trigger,
    member_event,
    tags,
    upsert_member,
)
from connectors.mailchimp.client import MailchimpClient, UncertainDelivery
from connectors.mailchimp.delivery import acknowledged, rejected
from connectors.mailchimp.errors import problem_reason
from connectors.mailchimp.settings import MailchimpSettings

NAME = "batch_operations"
TITLE = "Batch operations (backfills)"
LIMITS = BatchLimits(default=1000, maximum=1000)
FINISHED = "finished"


class BatchTimeout(JobUnfinished):
    """A batch did not finish in time; its operations' fate is unknown.

    `BatchRunner` catches it and sends the operations directly (read back first), so
    it never ends a run; were it to escape, it would stop the run (exit code 3).
    """


@dataclass(frozen=True, slots=True)
class OperationResult:
    """One operation's answer from the results archive."""

    operation_id: str
    status_code: int
    response: Any

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status_code < 300

    def detail(self) -> tuple[str, str | None]:
        """(`title: detail`, field) of an error answer."""
        body = self.response if isinstance(self.response, Mapping) else {}
        # The same wording as a direct call's reject, field messages included.
        return problem_reason(body, self.status_code)


def operation(request: ApiRequest, operation_id: str) -> dict[str, Any]:
    """One entry of `operations`: the body as a JSON string, query as `params`."""
    op: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "operation_id": operation_id,
    }
    if request.params:
        op["params"] = dict(request.params)
    if request.json is not None:
        op["body"] = orjson.dumps(request.json).decode()
    return op


def build_request(operations: Sequence[Mapping[str, Any]]) -> ApiRequest:
    """`POST /batches`."""
    return ApiRequest("POST", "/batches", {"operations": list(operations)})


def status_request(batch_id: str) -> ApiRequest:
    """`GET /batches/{batch_id}`."""
    return ApiRequest("GET", f"/batches/{batch_id}")


def parse_archive(data: bytes) -> dict[str, OperationResult]:
    """Every operation's result in a results archive, by operation_id."""
    results: dict[str, OperationResult] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            content = handle.read().strip()
            if not content:
                continue
            items = orjson.loads(content)
            for item in items if isinstance(items, list) else [items]:
                raw = item.get("response")
                try:
                    response = orjson.loads(raw) if isinstance(raw, str | bytes) and raw else raw
                except orjson.JSONDecodeError:
                    response = raw
                op_id = str(item.get("operation_id") or "")
                results[op_id] = OperationResult(op_id, int(item.get("status_code", 0)), response)
    return results


async def run_batch(
    client: MailchimpClient,
    operations: Sequence[Mapping[str, Any]],
    *,
    poll_seconds: float,
    timeout_seconds: float,
) -> dict[str, OperationResult]:
    """Submit one batch, wait until it is finished, and read its results.

    Raises:
        BatchTimeout: The batch did not finish within `timeout_seconds`.
    """
    submit = build_request(operations)
    # A lost answer may hide a created batch: the caller reads back instead of resubmitting.
    response = await client.request(submit.method, submit.path, json=submit.json, idempotent=False)
    batch = _batch_of(response)
    deadline = time.monotonic() + timeout_seconds
    while batch.get("status") != FINISHED:
        if time.monotonic() > deadline:
            raise BatchTimeout(
                f"Mailchimp batch {batch['id']} not finished after {timeout_seconds}s",
                str(batch["id"]),
            )
        await asyncio.sleep(poll_seconds)
        poll = status_request(str(batch["id"]))
        batch = _batch_of(await client.request(poll.method, poll.path))
    url = batch.get("response_body_url")
    if not url:
        return {}
    try:
        return parse_archive(await client.download(str(url)))
    except (tarfile.TarError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise MalformedResponse(f"batch {batch['id']}: unreadable results archive: {exc}") from exc


def _batch_of(response: Any) -> dict[str, Any]:
    # Without an id the batch cannot be polled, and its operations' fate is unknown.
    try:
        batch = response.json()
    except ValueError:
        batch = None
    if not isinstance(batch, dict) or not batch.get("id"):
        raise MalformedResponse("POST /batches answered without a batch id")
    return batch


def record_request(settings: MailchimpSettings, record: Record) -> ApiRequest:
    """The single request a record stands for (upserts, tags, member events)."""
    s = settings
    list_id = audience_of(record.fields, s.list_id)
    if record.action == upsert_member.NAME:
        return upsert_member.build_request(
            list_id, record.fields, s.status_if_new, s.skip_merge_validation
        )
    if record.action == tags.NAME:
        return tags.build_request(list_id, record.fields, s.is_syncing)
    if record.action == member_event.NAME:
        return member_event.build_request(list_id, record.fields, s.is_syncing)
    raise ValueError(f"{record.action} cannot go through /batches")


class BatchRunner:
    """Sends upserts, then tags and events, of one large flush through POST /batches.

    Journey triggers and uncertain records are left to the direct path (they need
    read-back first), as are email changes (a PATCH, then maybe a PUT) and every
    record whose result is missing from the archive or whose batch submission was
    lost or timed out (marked uncertain).
    """

    def __init__(self, settings: MailchimpSettings, client: MailchimpClient) -> None:
        self.settings = settings
        self.client = client

    async def run(self, records: Sequence[Record]) -> tuple[list[Outcome], list[Record]]:
        """Outcomes of what went through batches, and the records left to send directly."""
        # Email changes too: a PATCH whose 404 must fall back to the PUT.
        direct = [
            r.action == journey_trigger.NAME or r.uncertain or bool(r.fields.get("previous_hashes"))
            for r in records
        ]
        left = [r for r, d in zip(records, direct, strict=True) if d]
        batchable = [r for r, d in zip(records, direct, strict=True) if not d]
        outcomes: list[Outcome] = []
        upserts = [r for r in batchable if r.action == upsert_member.NAME]
        rest = [r for r in batchable if r.action != upsert_member.NAME]
        for group in (upserts, rest):
            size = self.settings.batch.operations_per_batch
            chunks = [group[i : i + size] for i in range(0, len(group), size)]
            for done, leftover in await gather_or_cancel(self._chunk(c) for c in chunks):
                outcomes.extend(done)
                left.extend(leftover)
        return outcomes, left

    async def _chunk(self, records: Sequence[Record]) -> tuple[list[Outcome], list[Record]]:
        ops = [operation(record_request(self.settings, r), r.key) for r in records]
        try:
            results = await run_batch(
                self.client,
                ops,
                poll_seconds=self.settings.batch.poll_seconds,
                timeout_seconds=self.settings.batch.batch_timeout_seconds,
            )
        except (UncertainDelivery, BatchTimeout, MalformedResponse):
            # The operations may or may not have been applied: send them directly,
            # reading back first where a repeat would not be harmless.
            return [], [dataclasses.replace(r, uncertain=True) for r in records]
        except RejectedPayload:
            return [], list(records)  # the batch itself was refused: send each directly
        outcomes: list[Outcome] = []
        left: list[Record] = []
        for record in records:
            result = results.get(record.key)
            if result is None or result.status_code >= 500 or result.status_code == 429:
                left.append(dataclasses.replace(record, uncertain=True))
            elif result.ok:
                outcomes.append(acknowledged(record))
            else:
                outcomes.append(rejected(record, *result.detail()))
        return outcomes, left
