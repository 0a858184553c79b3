"""Lists and list membership (membership changes do not touch consent)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from esp_sandbox.klaviyo.common import (
    Deps,
    base_url,
    collection_links,
    jsonapi,
    no_content,
    page_params,
    read_body,
)
from esp_sandbox.klaviyo.errors import KlaviyoError
from esp_sandbox.klaviyo.spec import BodyIssue
from esp_sandbox.klaviyo.store import KList
from esp_sandbox.klaviyo.validate import raise_issues

LISTS = "/api/lists"
LIST = "/api/lists/{id}"
MEMBERS = "/api/lists/{id}/relationships/profiles"
MAX_MEMBERS = 1000


def router(deps: Deps) -> APIRouter:
    """Routes for lists."""
    api = APIRouter()

    @api.get(LISTS)
    async def get_lists(request: Request) -> Response:
        offset, size = page_params(request, default=10, maximum=10)
        with deps.store.lock:
            lists = list(deps.store.lists.values())
        page = lists[offset : offset + size]
        links = collection_links(request, offset, size, len(lists))
        return jsonapi(
            {"data": [list_resource(k, base_url(request)) for k in page], "links": links}
        )

    @api.get(LIST)
    async def get_list(request: Request, id: str) -> Response:
        with deps.store.lock:
            return jsonapi({"data": list_resource(_list(deps, id), base_url(request))})

    @api.post(LISTS)
    async def create_list(request: Request) -> Response:
        attrs = (await read_body(deps, request, LISTS))["data"]["attributes"]
        with deps.store.lock:
            klist = new_list(deps, attrs["name"], attrs.get("opt_in_process") or "single_opt_in")
        return jsonapi({"data": list_resource(klist, base_url(request))}, 201)

    @api.post(MEMBERS)
    async def add_profiles_to_list(request: Request, id: str) -> Response:
        ids = await _member_ids(deps, request)
        with deps.store.lock:
            klist = _list(deps, id)
            _known_profiles(deps, ids)
            klist.members.extend(pid for pid in dict.fromkeys(ids) if pid not in klist.members)
        return no_content()

    @api.delete(MEMBERS)
    async def remove_profiles_from_list(request: Request, id: str) -> Response:
        ids = await _member_ids(deps, request)
        with deps.store.lock:
            klist = _list(deps, id)
            klist.members[:] = [pid for pid in klist.members if pid not in set(ids)]
        return no_content()

    return api


def introspection_router(deps: Deps) -> APIRouter:
    """`POST /_sandbox/klaviyo/lists`: add a list with a given id `{id, name?, opt_in_process?}`."""
    api = APIRouter()

    @api.post("/lists", status_code=201)
    async def seed_list(request: Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body must be JSON: {exc}") from exc
        if not isinstance(payload, dict) or not payload.get("id"):
            raise HTTPException(400, "list needs an 'id'")
        opt_in = str(payload.get("opt_in_process") or "single_opt_in")
        with deps.store.lock:
            klist = new_list(deps, str(payload.get("name") or payload["id"]), opt_in, payload["id"])
        return asdict(klist)

    return api


def new_list(deps: Deps, name: str, opt_in_process: str, list_id: str | None = None) -> KList:
    """Create and store a list (random Klaviyo-style id unless one is given)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
    klist = KList(
        id=list_id or deps.ctx.new_id(6, alphabet),
        name=name,
        opt_in_process=opt_in_process,
        created=deps.ctx.clock.now().isoformat(),
    )
    deps.store.lists[klist.id] = klist
    return klist


def list_resource(klist: KList, base: str) -> dict[str, Any]:
    """A list as a JSON:API resource."""
    return {
        "type": "list",
        "id": klist.id,
        "attributes": {
            "name": klist.name,
            "created": klist.created,
            "updated": klist.created,
            "opt_in_process": klist.opt_in_process,
        },
        "relationships": {
            name: {
                "links": {
                    "self": f"{base}/api/lists/{klist.id}/relationships/{name}/",
                    "related": f"{base}/api/lists/{klist.id}/{name}/",
                }
            }
            for name in ("profiles", "tags", "flow-triggers")
        },
        "links": {"self": f"{base}/api/lists/{klist.id}/"},
    }


def _list(deps: Deps, list_id: str) -> KList:
    klist = deps.store.lists.get(list_id)
    if klist is None:
        raise KlaviyoError(404, "not_found", f"List '{list_id}' does not exist.", pointer=None)
    return klist


async def _member_ids(deps: Deps, request: Request) -> list[str]:
    items = (await read_body(deps, request, MEMBERS))["data"]
    if len(items) > MAX_MEMBERS:
        raise KlaviyoError(
            400,
            "invalid",
            f"At most {MAX_MEMBERS} profiles may be added or removed per call; got {len(items)}.",
            pointer="/data",
        )
    return [str(item["id"]) for item in items]


def _known_profiles(deps: Deps, ids: list[str]) -> None:
    issues = [
        BodyIssue(f"/data/{index}/id", f"Profile '{pid}' does not exist.")
        for index, pid in enumerate(ids)
        if pid not in deps.store.profiles
    ]
    raise_issues(issues)
