"""Profile create, upsert (`/api/profile-import`), update, and reads."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
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
from esp_sandbox.klaviyo.identity import profile_resource, write_profile
from esp_sandbox.klaviyo.spec import BodyIssue
from esp_sandbox.klaviyo.store import IdentifierConflict, Profile
from esp_sandbox.klaviyo.validate import (
    MAX_PROFILE_BYTES,
    has_identifier,
    identifier_issues,
    normalize_phone,
    raise_issues,
)

PROFILES = "/api/profiles"
PROFILE = "/api/profiles/{id}"
IMPORT = "/api/profile-import"
_FILTER = re.compile(r"^(equals|any)\((\w+),\s*(.+)\)$")
_FILTERABLE = ("id", "email", "phone_number", "external_id", "_kx")


def conflict(exc: IdentifierConflict) -> KlaviyoError:
    """Klaviyo's 409 for an identifier owned by another profile."""
    return KlaviyoError(
        409,
        "duplicate_profile",
        "A profile already exists with one of these identifiers.",
        pointer="/data/attributes",
        title="Conflict.",
        meta={"duplicate_profile_id": exc.owner_id},
    )


def check_profile_body(data: dict[str, Any], *, need_identifier: bool) -> None:
    """400 for a bad email/phone or a profile with no identifier."""
    attrs = data.get("attributes") or {}
    issues = identifier_issues(attrs, "/data/attributes")
    if need_identifier and not has_identifier(data.get("id"), attrs, allow_anonymous=False):
        issues.append(
            BodyIssue(
                "/data/attributes",
                "One of email, phone_number, external_id or id is required.",
            )
        )
    raise_issues(issues)


def router(deps: Deps) -> APIRouter:
    """Routes for single-profile operations."""
    api = APIRouter()

    @api.post(PROFILES)
    async def create_profile(request: Request) -> Response:
        data = (await read_body(deps, request, PROFILES, max_bytes=MAX_PROFILE_BYTES))["data"]
        check_profile_body(data, need_identifier=True)
        with deps.store.lock:
            try:
                profile, _ = write_profile(
                    deps.store, deps.ctx, None, data["attributes"], None, mode="create"
                )
            except IdentifierConflict as exc:
                raise conflict(exc) from exc
        return jsonapi({"data": profile_resource(profile, base_url(request))}, 201)

    @api.post(IMPORT)
    async def create_or_update_profile(request: Request) -> Response:
        data = (await read_body(deps, request, IMPORT, max_bytes=MAX_PROFILE_BYTES))["data"]
        check_profile_body(data, need_identifier=True)
        with deps.store.lock:
            _must_exist(deps, data.get("id"))
            try:
                profile, created = write_profile(
                    deps.store,
                    deps.ctx,
                    data.get("id"),
                    _without_anonymous(data.get("attributes") or {}),
                    data.get("meta"),
                    mode="import",
                )
            except IdentifierConflict as exc:
                raise conflict(exc) from exc
        return jsonapi(
            {"data": profile_resource(profile, base_url(request))}, 201 if created else 200
        )

    @api.patch(PROFILE)
    async def update_profile(request: Request, id: str) -> Response:
        data = (await read_body(deps, request, PROFILE, max_bytes=MAX_PROFILE_BYTES))["data"]
        if data.get("id") != id:
            raise KlaviyoError(
                409, "conflict", "data.id must match the id in the URL.", pointer="/data/id"
            )
        check_profile_body(data, need_identifier=False)
        with deps.store.lock:
            _must_exist(deps, id)
            try:
                profile, _ = write_profile(
                    deps.store,
                    deps.ctx,
                    id,
                    _without_anonymous(data.get("attributes") or {}),
                    data.get("meta"),
                    mode="patch",
                )
            except IdentifierConflict as exc:
                raise conflict(exc) from exc
        return jsonapi({"data": profile_resource(profile, base_url(request))})

    @api.get(PROFILE)
    async def get_profile(request: Request, id: str) -> Response:
        with deps.store.lock:
            _must_exist(deps, id)
            return jsonapi({"data": profile_resource(deps.store.profiles[id], base_url(request))})

    @api.get(PROFILES)
    async def get_profiles(request: Request) -> Response:
        offset, size = page_params(request)
        with deps.store.lock:
            chosen = [p for p in deps.store.profiles.values() if _matches(p, request)]
            page = chosen[offset : offset + size]
            payload = {
                "data": [profile_resource(p, base_url(request)) for p in page],
                "links": collection_links(request, offset, size, len(chosen)),
            }
        return jsonapi(payload)

    return api


def introspection_router(deps: Deps) -> APIRouter:
    """`POST /_sandbox/klaviyo/profiles`: seed a profile with a chosen id `{id, attributes}`."""
    api = APIRouter()

    @api.post("/profiles", status_code=201)
    async def seed_profile(request: Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body must be JSON: {exc}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("attributes", {}), dict):
            raise HTTPException(400, "profile needs an object 'attributes'")
        with deps.store.lock:
            profile_id = str(payload.get("id") or "01" + deps.ctx.new_id(24))
            if profile_id not in deps.store.profiles:
                now = deps.ctx.clock.now().isoformat()
                deps.store.profiles[profile_id] = Profile(id=profile_id, created=now, updated=now)
            try:
                profile, _ = write_profile(
                    deps.store, deps.ctx, profile_id, payload.get("attributes", {}), None, "patch"
                )
            except IdentifierConflict as exc:
                raise HTTPException(409, str(exc)) from exc
        return profile_resource(profile, base_url(request))

    return api


def _must_exist(deps: Deps, profile_id: str | None) -> None:
    if profile_id and profile_id not in deps.store.profiles:
        raise KlaviyoError(
            404, "not_found", f"A profile with id {profile_id} does not exist.", pointer="/data/id"
        )


def _without_anonymous(attrs: dict[str, Any]) -> dict[str, Any]:
    """Profile writes do not take anonymous_id in this revision (events only)."""
    return {k: v for k, v in attrs.items() if k != "anonymous_id"}


def _matches(profile: Profile, request: Request) -> bool:
    """Apply `filter=equals(field,"value")` / `any(field,["a","b"])`."""
    raw = request.query_params.get("filter")
    if not raw:
        return True
    match = _FILTER.match(raw.strip())
    if match is None or match[2] not in _FILTERABLE:
        raise KlaviyoError(
            400,
            "invalid",
            f"Unsupported filter '{raw}'. Use equals(<field>,\"value\") on {_FILTERABLE}.",
            pointer=None,
            parameter="filter",
        )
    op, field_name, literal = match[1], match[2], match[3].strip()
    values = (
        [v.strip().strip('"') for v in literal.strip("[]").split(",")]
        if op == "any"
        else [literal.strip('"')]
    )
    current = profile.id if field_name == "id" else profile.identifier(field_name)
    if current is None:
        return False
    if field_name == "email":
        return current.lower() in {v.lower() for v in values}
    if field_name == "phone_number":
        return current in {normalize_phone(v) or v for v in values}
    return current in values
