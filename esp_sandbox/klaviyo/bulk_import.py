"""Bulk profile import jobs: create, status progression, import errors.

A job is `queued` for 1 s, `processing` for 1 s plus 1 s per 5,000 profiles,
then `complete` (ESP seconds, divided by time_scale). Rows are applied when
the job completes; rows that are invalid (bad email or phone, no identifier,
identifier conflict, or picked by a `partial` fault) become import errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from esp_sandbox.klaviyo.common import (
    Deps,
    base_url,
    collection_links,
    jsonapi,
    page_params,
    read_body,
)
from esp_sandbox.klaviyo.errors import KlaviyoError
from esp_sandbox.klaviyo.identity import write_profile
from esp_sandbox.klaviyo.store import IdentifierConflict
from esp_sandbox.klaviyo.validate import MAX_PROFILE_BYTES, has_identifier, identifier_issues

JOBS = "/api/profile-bulk-import-jobs"
JOB = "/api/profile-bulk-import-jobs/{job_id}"
ERRORS = "/api/profile-bulk-import-jobs/{id}/import-errors"
MAX_PROFILES = 10_000
QUEUED_S = 1.0
PROCESSING_S = 1.0
PROFILES_PER_S = 5000


@dataclass
class ImportJob:
    """One bulk import job and its outcome."""

    id: str
    created_at: datetime
    rows: list[dict[str, Any]]
    list_ids: list[str]
    corrupt: set[int]
    queued_until: datetime
    done_at: datetime
    applied: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    profile_ids: list[str] = field(default_factory=list)

    def status(self, now: datetime) -> str:
        """queued → processing → complete, by the clock."""
        if now < self.queued_until:
            return "queued"
        return "processing" if now < self.done_at else "complete"

    def view(self, now: datetime) -> dict[str, Any]:
        """Summary for `/_sandbox/state`."""
        return {
            "id": self.id,
            "status": self.status(now),
            "total_count": len(self.rows),
            "failed_count": len(self.errors),
            "list_ids": self.list_ids,
            "profile_ids": self.profile_ids,
            "errors": self.errors,
        }


def router(deps: Deps) -> APIRouter:
    """Routes for bulk profile import."""
    api = APIRouter()

    @api.post(JOBS)
    async def bulk_import_profiles(request: Request) -> Response:
        data = (await read_body(deps, request, JOBS))["data"]
        rows = data["attributes"]["profiles"]["data"]
        if len(rows) > MAX_PROFILES:
            raise KlaviyoError(
                400,
                "invalid",
                f"A bulk import job accepts at most {MAX_PROFILES} profiles; got {len(rows)}.",
                pointer="/data/attributes/profiles/data",
            )
        list_ids = [item["id"] for item in _relationship(data, "lists")]
        with deps.store.lock:
            for list_id in list_ids:
                if list_id not in deps.store.lists:
                    raise KlaviyoError(
                        404,
                        "not_found",
                        f"List '{list_id}' does not exist.",
                        pointer="/data/relationships/lists/data",
                    )
            job = _new_job(deps, request, rows, list_ids)
            deps.store.jobs[job.id] = job
        return jsonapi({"data": _job_resource(job, deps, request)}, 202)

    @api.get(JOB)
    async def get_bulk_import_profiles_job(request: Request, job_id: str) -> Response:
        with deps.store.lock:
            job = _job(deps, job_id)
            return jsonapi({"data": _job_resource(job, deps, request)})

    @api.get(ERRORS)
    async def get_errors_for_bulk_import_profiles_job(request: Request, id: str) -> Response:
        offset, size = page_params(request)
        with deps.store.lock:
            job = _job(deps, id)
            refresh(deps, job)
            page = job.errors[offset : offset + size]
            links = collection_links(request, offset, size, len(job.errors))
        return jsonapi({"data": page, "links": links})

    return api


def _relationship(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    rel = (data.get("relationships") or {}).get(name) or {}
    items = rel.get("data") or []
    return items if isinstance(items, list) else [items]


def _new_job(
    deps: Deps, request: Request, rows: list[dict[str, Any]], list_ids: list[str]
) -> ImportJob:
    now = deps.ctx.clock.now()
    queued = timedelta(seconds=deps.ctx.clock.scaled(QUEUED_S))
    work = deps.ctx.clock.scaled(PROCESSING_S + len(rows) / PROFILES_PER_S)
    corrupt = set(deps.ctx.faults.partial_items(request.url.path, len(rows)))
    return ImportJob(
        id=deps.ctx.new_id(26),
        created_at=now,
        rows=rows,
        list_ids=list_ids,
        corrupt=corrupt,
        queued_until=now + queued,
        done_at=now + queued + timedelta(seconds=work),
    )


def _job(deps: Deps, job_id: str) -> ImportJob:
    job = deps.store.jobs.get(job_id)
    if not isinstance(job, ImportJob):
        raise KlaviyoError(
            404, "not_found", f"Bulk import job '{job_id}' does not exist.", pointer=None
        )
    refresh(deps, job)
    return job


def refresh(deps: Deps, job: ImportJob) -> None:
    """Apply the job's rows once it has reached `complete`."""
    if job.applied or job.status(deps.ctx.clock.now()) != "complete":
        return
    job.applied = True
    for index, row in enumerate(job.rows):
        problem = _row_problem(row, index in job.corrupt)
        if problem is None:
            try:
                profile, _ = write_profile(
                    deps.store,
                    deps.ctx,
                    row.get("id"),
                    {k: v for k, v in (row.get("attributes") or {}).items() if k != "anonymous_id"},
                    row.get("meta"),
                    mode="import",
                )
            except IdentifierConflict as exc:
                problem = (
                    "duplicate_profile",
                    f"{exc.field_name} already belongs to profile {exc.owner_id}.",
                    f"/data/attributes/profiles/data/{index}/attributes/{exc.field_name}",
                )
            except KeyError:
                problem = (
                    "not_found",
                    "Profile id does not exist.",
                    f"/data/attributes/profiles/data/{index}/id",
                )
            else:
                job.profile_ids.append(profile.id)
                for list_id in job.list_ids:
                    members = deps.store.lists[list_id].members
                    if profile.id not in members:
                        members.append(profile.id)
                continue
        code, detail, pointer = problem
        if not pointer.startswith("/data/attributes/profiles"):
            pointer = f"/data/attributes/profiles/data/{index}{pointer}"
        job.errors.append(_import_error(deps, code, detail, pointer, row))


def _row_problem(row: dict[str, Any], corrupt: bool) -> tuple[str, str, str] | None:
    if corrupt:
        return ("invalid", "Injected sandbox fault: this profile is invalid.", "/attributes")
    attrs = row.get("attributes") or {}
    issues = identifier_issues(attrs, "/attributes")
    if issues:
        return ("invalid", issues[0].detail, issues[0].pointer)
    if not has_identifier(row.get("id"), attrs, allow_anonymous=False):
        return (
            "invalid",
            "One of email, phone_number, external_id or id is required.",
            "/attributes",
        )
    if len(str(row)) > MAX_PROFILE_BYTES:
        return ("invalid", "A profile may not exceed 100KB.", "")
    return None


def _import_error(
    deps: Deps, code: str, detail: str, pointer: str, row: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "import-error",
        "id": deps.ctx.new_id(26),
        "attributes": {
            "code": code,
            "title": "Invalid input." if code == "invalid" else "Conflict.",
            "detail": detail,
            "source": {"pointer": pointer},
            "original_payload": row,
        },
    }


def _job_resource(job: ImportJob, deps: Deps, request: Request) -> dict[str, Any]:
    now = deps.ctx.clock.now()
    status = job.status(now)
    base = base_url(request)
    done = status == "complete"
    return {
        "type": "profile-bulk-import-job",
        "id": job.id,
        "attributes": {
            "status": status,
            "created_at": job.created_at.isoformat(),
            "total_count": len(job.rows),
            "completed_count": len(job.rows) - len(job.errors) if done else 0,
            "failed_count": len(job.errors),
            "completed_at": job.done_at.isoformat() if done else None,
            "expires_at": (job.created_at + timedelta(days=7)).isoformat(),
            "started_at": job.queued_until.isoformat() if status != "queued" else None,
        },
        "relationships": {
            name: {
                "links": {
                    "self": f"{base}{JOBS}/{job.id}/relationships/{name}/",
                    "related": f"{base}{JOBS}/{job.id}/{name}/",
                }
            }
            for name in ("lists", "profiles", "import-errors")
        },
        "links": {"self": f"{base}{JOBS}/{job.id}/"},
    }
