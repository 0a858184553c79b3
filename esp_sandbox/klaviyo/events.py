"""`POST /api/events` and `POST /api/event-bulk-create-jobs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from esp_sandbox.klaviyo.common import Deps, accepted, read_body
from esp_sandbox.klaviyo.errors import KlaviyoError, error_object
from esp_sandbox.klaviyo.identity import identifiers_of, write_profile
from esp_sandbox.klaviyo.spec import BodyIssue
from esp_sandbox.klaviyo.store import Event, Profile
from esp_sandbox.klaviyo.validate import (
    event_issues,
    has_identifier,
    identifier_issues,
    parse_time,
    raise_issues,
)

EVENTS = "/api/events"
BULK = "/api/event-bulk-create-jobs"
MAX_BULK_EVENTS = 1000
_NO_IDENTIFIER = (
    "At least one profile identifier (id, email, phone_number, external_id or anonymous_id)"
    " is required."
)


def router(deps: Deps) -> APIRouter:
    """Routes for event ingestion."""
    api = APIRouter()

    @api.post(EVENTS)
    async def create_event(request: Request) -> Response:
        body = await read_body(deps, request, EVENTS)
        attrs = body["data"]["attributes"]
        profile = attrs["profile"]["data"]
        pointer = "/data/attributes"
        issues = event_issues(attrs, pointer, deps.ctx.clock.now())
        issues += _profile_issues(profile, f"{pointer}/profile/data")
        raise_issues(issues)
        with deps.store.lock:
            meta = profile.get("attributes", {}).get("meta") or profile.get("meta")
            target = _upsert_profile(deps, profile, meta)
            _record(deps, target, attrs, via="create_event", backfill=None)
        return accepted()

    @api.post(BULK)
    async def bulk_create_events(request: Request) -> Response:
        body = await read_body(deps, request, BULK)
        groups = body["data"]["attributes"]["events-bulk-create"]["data"]
        _check_bulk(deps, request, groups)
        with deps.store.lock:
            for group in groups:
                g_attrs = group["attributes"]
                profile = g_attrs["profile"]["data"]
                target = _upsert_profile(deps, profile, profile.get("meta"))
                for event in g_attrs["events"]["data"]:
                    _record(
                        deps,
                        target,
                        event["attributes"],
                        via="bulk_create_events",
                        backfill=g_attrs.get("backfill"),
                    )
        return accepted()

    return api


def _profile_issues(profile: dict[str, Any], pointer: str) -> list[BodyIssue]:
    attrs = profile.get("attributes") or {}
    issues = identifier_issues(attrs, f"{pointer}/attributes")
    if not has_identifier(profile.get("id"), attrs, allow_anonymous=True):
        issues.append(BodyIssue(f"{pointer}/attributes", _NO_IDENTIFIER))
    return issues


def _check_bulk(deps: Deps, request: Request, groups: list[dict[str, Any]]) -> None:
    """Count limit, per-event limits, repeated unique_ids and injected partial faults."""
    total = sum(len(g["attributes"]["events"]["data"]) for g in groups)
    if total > MAX_BULK_EVENTS:
        raise KlaviyoError(
            400,
            "invalid",
            f"A bulk create job accepts at most {MAX_BULK_EVENTS} events; got {total}.",
            pointer="/data/attributes/events-bulk-create/data",
        )
    now = deps.ctx.clock.now()
    issues: list[BodyIssue] = []
    seen: dict[tuple[str, str, str], str] = {}
    flat: list[str] = []
    for g_index, group in enumerate(groups):
        base = f"/data/attributes/events-bulk-create/data/{g_index}/attributes"
        profile = group["attributes"]["profile"]["data"]
        issues += _profile_issues(profile, f"{base}/profile/data")
        if profile.get("id") and profile["id"] not in deps.store.profiles:
            issues.append(
                BodyIssue(f"{base}/profile/data/id", f"Profile '{profile['id']}' does not exist.")
            )
        who = _profile_key(profile)
        for e_index, event in enumerate(group["attributes"]["events"]["data"]):
            pointer = f"{base}/events/data/{e_index}/attributes"
            flat.append(pointer)
            attrs = event["attributes"]
            issues += event_issues(attrs, pointer, now)
            unique_id = attrs.get("unique_id")
            if unique_id is None:
                continue
            key = (who, attrs["metric"]["data"]["attributes"]["name"], str(unique_id))
            if key in seen:
                issues.append(
                    BodyIssue(
                        f"{pointer}/unique_id",
                        f"unique_id '{unique_id}' is repeated for the same profile and metric "
                        f"(first at {seen[key]}); no events were processed.",
                    )
                )
            else:
                seen[key] = f"{pointer}/unique_id"
    for index in deps.ctx.faults.partial_items(request.url.path, len(flat)):
        issues.append(
            BodyIssue(f"{flat[index]}/properties", "Injected sandbox fault: this event is invalid.")
        )
    if issues:
        errors = [error_object(400, "invalid", i.detail, pointer=i.pointer) for i in issues]
        raise KlaviyoError.many(400, errors)


def _profile_key(profile: dict[str, Any]) -> str:
    """A stable key naming the profile a bulk group targets, for the repeat check."""
    if profile.get("id"):
        return f"id:{profile['id']}"
    ids = identifiers_of(profile.get("attributes") or {})
    for name, value in ids.items():
        if value:
            return f"{name}:{value.lower() if name == 'email' else value}"
    return "?"


def _upsert_profile(deps: Deps, profile: dict[str, Any], meta: dict[str, Any] | None) -> Profile:
    """Create or update the profile an event names (events may create profiles)."""
    p_attrs = {k: v for k, v in (profile.get("attributes") or {}).items() if k != "meta"}
    profile_id = profile.get("id")
    if profile_id and profile_id not in deps.store.profiles:
        raise KlaviyoError(
            404, "not_found", f"Profile '{profile_id}' does not exist.", pointer="/data/id"
        )
    target, _ = write_profile(deps.store, deps.ctx, profile_id, p_attrs, meta, mode="event")
    return target


def _record(
    deps: Deps, target: Profile, attrs: dict[str, Any], *, via: str, backfill: bool | None
) -> None:
    """Store one event for `target` unless (profile, metric, unique_id) was seen."""
    ctx = deps.ctx
    received = ctx.clock.now()
    when = _event_time(attrs.get("time"), received)
    unique_id = attrs.get("unique_id")
    deps.store.record_event(
        Event(
            id=ctx.new_id(26),
            profile_id=target.id,
            metric=attrs["metric"]["data"]["attributes"]["name"],
            time=when.isoformat(),
            unique_id=str(unique_id) if unique_id is not None else when.isoformat(),
            unique_id_defaulted=unique_id is None,
            properties=attrs.get("properties") or {},
            value=attrs.get("value"),
            value_currency=attrs.get("value_currency"),
            backfill=bool(attrs.get("backfill") if attrs.get("backfill") is not None else backfill),
            received=received.isoformat(),
            via=via,
        )
    )


def _event_time(raw: Any, received: datetime) -> datetime:
    """The event's time truncated to the second (request receipt time when absent)."""
    parsed = parse_time(raw) if isinstance(raw, str) else None
    return (parsed or received).replace(microsecond=0)
