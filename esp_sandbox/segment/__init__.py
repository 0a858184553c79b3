"""Segment Profiles API (Unify) half of the ESP sandbox.

Serves `GET /v1/spaces/{space_id}/collections/users/profiles/{identifier}/traits`,
`/external_ids` and `/metadata` behind Basic auth (token as username) and
Segment's 100 requests/s per space. Profiles are seeded through
`POST /_sandbox/segment/profiles` (sandbox only; see `store.parse_seed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from esp_sandbox.context import SandboxContext
from esp_sandbox.segment import profiles
from esp_sandbox.segment.access import ProfilesApiError, SpaceRateLimiter, authenticate
from esp_sandbox.segment.store import Profile, ProfilesStore, parse_seed, profile_snapshot

__all__ = ["ProfilesSandbox"]

_BASE = "/{space_id}/collections/users/profiles/{identifier}"


class ProfilesSandbox:
    """Fake Segment Unify spaces.

    Attributes:
        router: Profiles API routes under `/v1/spaces`.
        introspection_router: `POST/GET /_sandbox/segment/profiles` (mounted by the core).
    """

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = ProfilesStore(ctx)
        self.limiter = SpaceRateLimiter(ctx.clock)
        self.router = self._api_router()
        self.introspection_router = self._admin_router()

    def reset(self) -> None:
        """Forget every profile and rate-limit window."""
        with self.store.lock:
            self.store.spaces.clear()
        self.limiter.reset()

    def snapshot(self) -> dict[str, Any]:
        """Ground truth: profiles per space, and refused requests."""
        with self.store.lock:
            return {
                "spaces": {
                    space: [profile_snapshot(p) for p in items]
                    for space, items in self.store.spaces.items()
                },
                "rate_limited": self.limiter.refused(),
            }

    def _serve(
        self, request: Request, render: Callable[[Profile, dict[str, str], str], dict[str, Any]]
    ) -> Response:
        request_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        headers = {"Request-Id": request_id}
        space_id = request.path_params["space_id"]
        try:
            authenticate(request.headers.get("authorization"), self.ctx.config)
            self.limiter.admit(space_id)
            with self.store.lock:
                profile = profiles.resolve(self.store, space_id, request.path_params["identifier"])
                body = render(profile, dict(request.query_params), request.url.path)
        except ProfilesApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
        return Response(orjson.dumps(body), media_type="application/json", headers=headers)

    def _api_router(self) -> APIRouter:
        router = APIRouter(prefix="/v1/spaces", tags=["segment-profiles"])

        @router.get(_BASE + "/traits")
        def get_traits(request: Request) -> Response:
            return self._serve(request, profiles.traits)

        @router.get(_BASE + "/external_ids")
        def get_external_ids(request: Request) -> Response:
            return self._serve(request, profiles.external_ids)

        @router.get(_BASE + "/metadata")
        def get_metadata(request: Request) -> Response:
            return self._serve(request, lambda p, q, u: profiles.metadata(p))

        return router

    def _admin_router(self) -> APIRouter:
        router = APIRouter(tags=["sandbox-segment"])
        store = self.store

        @router.post("/profiles", status_code=201)
        async def seed_profiles(request: Request) -> JSONResponse:
            try:
                body = orjson.loads(await request.body() or b"null")
                if not isinstance(body, dict) or not isinstance(body.get("space_id"), str):
                    raise ValueError("body needs space_id (string) and profiles (list)")
                raw_profiles = body.get("profiles")
                if not isinstance(raw_profiles, list):
                    raise ValueError("profiles must be a list")
                specs = [parse_seed(item) for item in raw_profiles]
            except (ValueError, orjson.JSONDecodeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            with store.lock:
                made = [store.upsert(body["space_id"], spec) for spec in specs]
            return JSONResponse({"segment_ids": [p.segment_id for p in made]}, status_code=201)

        @router.get("/profiles")
        def list_profiles() -> dict[str, Any]:
            return self.snapshot()

        return router
