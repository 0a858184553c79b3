"""Sinks for profile jobs: upserts (single or bulk import, polled) and list/subscription jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from connectors.base import Outcome, Record
from connectors.errors import JobUnfinished, MalformedResponse, RejectedPayload
from connectors.http import gather_or_cancel
from connectors.klaviyo.actions import upsert_profile
from connectors.klaviyo.client import KlaviyoClient
from connectors.klaviyo.errors import field_of
from connectors.klaviyo.sink import (
    Sink,
    acknowledged,
    chunk_records,
    rejected,
    rounds,
    send_rows,
)

FINISHED = frozenset({"complete", "cancelled"})
DUPLICATE = "duplicate_profile"
"""Klaviyo's code for an identifier that belongs to another profile."""


def identity(record: Record) -> Hashable:
    """Who a profile-shaped record is about (one per job: order matters per person)."""
    fields = record.fields
    attributes = fields.get("attributes") or fields
    return tuple(attributes.get(k) for k in ("email", "phone_number", "external_id"))


Resend = Callable[[list[Record]], Awaitable[list[Outcome]]]


class ImportJobs:
    """Runs bulk profile import jobs: create, poll, read import-errors.

    Args:
        client: The Klaviyo client.
        resend: Sends records one by one; rows a job refused because an identifier
            belongs to another profile go through it instead of being rejected.
    """

    def __init__(self, client: KlaviyoClient, resend: Resend | None = None) -> None:
        self.client = client
        self.batch = client.settings.batch
        self.resend = resend

    async def outcomes(self, response: httpx.Response, records: Sequence[Record]) -> list[Outcome]:
        """Poll the job a 202 created and turn its import-errors into rejects."""
        job = job_of(response, "bulk import job")
        job = await self._wait(str(job["id"]), job)
        attributes = job["attributes"]
        if attributes.get("status") == "cancelled":
            return [rejected(r, "Klaviyo cancelled the bulk import job") for r in records]
        failed = _failed_count(attributes, str(job["id"]))
        errors = await self._errors(str(job["id"])) if failed else []
        rows = {row.index: row for row in upsert_profile.rows_from_import_errors(errors, records)}
        unattributed = failed - len(rows)
        if unattributed > 0:
            # Klaviyo counted failures it does not let us pin on a row: any record not
            # named may be one, so none of them may pass as delivered (a silent loss).
            reason = _unattributed_reason(str(job["id"]), failed, unattributed)
            outcomes = [
                rejected(r, rows[i].detail, rows[i].field) if i in rows else rejected(r, reason)
                for i, r in enumerate(records)
            ]
        else:
            outcomes = [
                rejected(r, rows[i].detail, rows[i].field) if i in rows else acknowledged(r)
                for i, r in enumerate(records)
            ]
        return await self._resend_duplicates(outcomes, errors, records)

    async def _resend_duplicates(
        self, outcomes: list[Outcome], errors: list[dict[str, Any]], records: Sequence[Record]
    ) -> list[Outcome]:
        """Rows refused as `duplicate_profile` (an identifier of theirs belongs to another
        profile, e.g. an alias's new user id) go again one by one: a single upsert settles
        the conflict by updating a profile, as it does when it is sent alone."""
        duplicates = [e for e in errors if (e.get("attributes") or {}).get("code") == DUPLICATE]
        if self.resend is None or not duplicates:
            return outcomes
        found = upsert_profile.rows_from_import_errors(duplicates, records)
        indexes = sorted({row.index for row in found})
        again = await self.resend([records[i] for i in indexes]) if indexes else []
        for index, outcome in zip(indexes, again, strict=True):
            outcomes[index] = outcome
        return outcomes

    async def _wait(self, job_id: str, job: dict[str, Any]) -> dict[str, Any]:
        timeout = self.batch.job_timeout_seconds
        deadline = time.monotonic() + timeout
        while (job.get("attributes") or {}).get("status") not in FINISHED:
            if time.monotonic() > deadline:
                status = job["attributes"].get("status")
                raise JobUnfinished(
                    f"Klaviyo bulk import job {job_id} did not finish within {timeout:g}s "
                    f"(last status {status!r}); nothing in it is acknowledged, the next run "
                    "sends it again (raise batch.job_timeout_seconds if Klaviyo is slow)",
                    job_id,
                )
            await asyncio.sleep(self.batch.job_poll_seconds)
            response = await self.client.call(
                "get_bulk_import_profiles_job", path={"job_id": job_id}
            )
            job = job_of(response, f"bulk import job {job_id}")
        return job

    async def _errors(self, job_id: str) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        params: dict[str, str] = {"page[size]": "100"}
        while True:
            response = await self.client.call(
                "get_errors_for_bulk_import_profiles_job", path={"id": job_id}, params=params
            )
            body = _json_object(response, f"import-errors of job {job_id}")
            page = body.get("data") or []
            if not isinstance(page, list):
                raise MalformedResponse(f"import-errors of job {job_id}: `data` is not a list")
            errors.extend(e for e in page if isinstance(e, dict))
            cursor = _next_cursor(body)
            if cursor is None:
                return errors
            params = {"page[size]": "100", "page[cursor]": cursor}


def _failed_count(attributes: dict[str, Any], job_id: str) -> int:
    value = attributes.get("failed_count") or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponse(f"bulk import job {job_id}: failed_count is {value!r}")
    return value


def _unattributed_reason(job_id: str, failed: int, unattributed: int) -> str:
    failures = "failure" if unattributed == 1 else "failures"
    return (
        f"Klaviyo bulk import job {job_id} reported {unattributed} {failures} that could not "
        f"be attributed to a record ({failed} failed in all): this record may be one and may "
        "not have been imported (`espbridge retry` sends it again)"
    )


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    # A proxy can cut a 2xx body short, or answer with a page of its own.
    try:
        body = response.json()
    except ValueError:
        raise MalformedResponse(f"{what}: {response.status_code} body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedResponse(f"{what}: {response.status_code} body is not a JSON object")
    return body


def job_of(response: httpx.Response, what: str) -> dict[str, Any]:
    """The job resource (`data` with an `id`) of a job answer, or `MalformedResponse`.

    Without the id the job cannot be polled, so its rows cannot be acknowledged.
    """
    job = _json_object(response, what).get("data")
    if not isinstance(job, dict) or not job.get("id"):
        raise MalformedResponse(f"{what}: answer has no job id")
    attributes = job.get("attributes")
    return {**job, "attributes": attributes if isinstance(attributes, dict) else {}}


def _next_cursor(body: dict[str, Any]) -> str | None:
    links = body.get("links")
    link = links.get("next") if isinstance(links, dict) else None
    if not link or not isinstance(link, str):
        return None
    values = parse_qs(urlsplit(link).query).get("page[cursor]")
    return values[0] if values else None


class ProfileSink(Sink):
    """Profile upserts: `profile-import` one by one for a few, bulk import jobs for volume."""

    def __init__(self, client: KlaviyoClient) -> None:
        super().__init__(client, client.settings.batch.profiles_per_job)
        self.jobs = ImportJobs(client, resend=self._singles)

    async def process_batch(self, records: list[Record]) -> list[Outcome]:
        """Send in rounds with one record per person, so later traits win."""
        outcomes: list[Outcome] = []
        for group in rounds(records, identity):
            if len(group) < self.settings.batch.bulk_threshold:
                outcomes.extend(await self._singles(group))
            else:
                outcomes.extend(await self._bulk(group))
        return outcomes

    async def _singles(self, records: list[Record]) -> list[Outcome]:
        gate = asyncio.Semaphore(self.settings.batch.single_concurrency)

        async def one(record: Record) -> Outcome:
            async with gate:
                return await self.upsert(record)

        return await gather_or_cancel(one(r) for r in records)

    async def upsert(self, record: Record) -> Outcome:
        """`profile-import`; on 409 `duplicate_profile` PATCH the profile Klaviyo names."""
        request = upsert_profile.build_request(record)
        try:
            response = await self.client.call(request.operation_id, body=request.body)
        except RejectedPayload as exc:
            known = upsert_profile.duplicate_profile_id(exc.body) if exc.status == 409 else None
            if known is None:
                return rejected(record, exc.detail, field_of(exc.pointer))
            ours = record.fields.get("profile_id")
            if ours and ours != known:
                # The request named the customer's own profile (its id learned from
                # Klaviyo) and another holds one of its new identifiers, e.g. an alias's
                # new user id seen first on another device: the traits go to ours, not to
                # the other (whose id would then be a second one for this customer).
                return await self._split(record, ours, known)
            return await self._update(record, known)
        return acknowledged(record, **_learned(response))

    async def _update(self, record: Record, known: str, *, identifiers: bool = True) -> Outcome:
        request = upsert_profile.build_update(record, known, identifiers=identifiers)
        try:
            await self.client.call(
                request.operation_id, body=request.body, path=request.path_params
            )
        except RejectedPayload as exc:
            other = upsert_profile.duplicate_profile_id(exc.body) if exc.status == 409 else None
            if other is None or not identifiers:
                return rejected(record, exc.detail, field_of(exc.pointer))
            return await self._split(record, known, other)
        return acknowledged(record, klaviyo_profile_id=known)

    async def _split(self, record: Record, target: str, other: str) -> Outcome:
        """The identifiers are split over two Klaviyo profiles: update `target` with
        everything but the identifiers, and say so (no duplicate is created)."""
        outcome = await self._update(record, target, identifiers=False)
        note = f"identifiers left unchanged: they also belong to Klaviyo profile {other}"
        reason = f"{outcome.reason}; {note}" if outcome.reason else note
        return dataclasses.replace(outcome, reason=reason)

    async def _bulk(self, records: list[Record]) -> list[Outcome]:
        parts = chunk_records(records, upsert_profile)
        results = await gather_or_cancel(
            send_rows(
                self.client,
                part,
                upsert_profile.build_batch,
                upsert_profile.rows_from_error,
                self.jobs.outcomes,
            )
            for part in parts
        )
        return [o for result in results for o in result]


def _learned(response: httpx.Response) -> dict[str, str]:
    try:
        found = response.json()["data"]["id"]
    except (ValueError, KeyError, TypeError):
        return {}
    return {"klaviyo_profile_id": str(found)} if found else {}


class JobSink(Sink):
    """Subscribe, unsubscribe and add-to-list: bulk jobs grouped by list."""

    def __init__(self, client: KlaviyoClient, module: ModuleType, polled: bool = False) -> None:
        super().__init__(client, module.LIMITS.max_items)
        self.module = module
        self.jobs = ImportJobs(client) if polled else None

    async def process_batch(self, records: list[Record]) -> list[Outcome]:
        """One job per list and chunk, one record per person per job."""
        by_key: dict[Hashable, list[Record]] = {}
        for record in records:
            by_key.setdefault(self.module.batch_key(record), []).append(record)
        outcomes: list[Outcome] = []
        for group in by_key.values():
            for batch in rounds(group, identity):
                for part in chunk_records(batch, self.module):
                    outcomes.extend(
                        await send_rows(
                            self.client,
                            part,
                            self.module.build_batch,
                            self.module.rows_from_error,
                            self.jobs.outcomes if self.jobs else None,
                        )
                    )
        return outcomes
