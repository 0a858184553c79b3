"""The Klaviyo half of the sandbox (private API under `/api`, revision 2026-07-15)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from esp_sandbox.context import SandboxContext
from esp_sandbox.klaviyo import account, bulk_import, events, lists, profiles, subscriptions
from esp_sandbox.klaviyo.common import Deps
from esp_sandbox.klaviyo.errors import (
    KlaviyoError,
    error_object,
    error_response,
    fault_body,
    handle_klaviyo_error,
)
from esp_sandbox.klaviyo.gate import KlaviyoGate
from esp_sandbox.klaviyo.spec import shared_spec
from esp_sandbox.klaviyo.store import KlaviyoStore
from esp_sandbox.ratelimit import FixedWindowLimiter

__all__ = ["KlaviyoSandbox"]


class KlaviyoSandbox:
    """Klaviyo routes, their ground-truth store, and the request gate.

    Same contract as the other halves: `router`, `snapshot()`, `reset()`.
    """

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.spec = shared_spec()
        self.deps = Deps(ctx=ctx, store=KlaviyoStore(), spec=self.spec)
        account.seed(self.deps)
        self.router = APIRouter()
        for module in (events, profiles, bulk_import, subscriptions, lists, account):
            self.router.include_router(module.router(self.deps))
        self.introspection_router = APIRouter()
        self.introspection_router.include_router(account.introspection_router(self.deps))
        self.introspection_router.include_router(lists.introspection_router(self.deps))
        self.introspection_router.include_router(profiles.introspection_router(self.deps))
        self.fault_body = fault_body
        ctx.notes["klaviyo_spec"] = self.spec.status()
        self.limiter = FixedWindowLimiter(ctx.clock)

    def install(self, app: FastAPI) -> None:
        """Mount routes, the error handler and the gate (auth, revision, limits) on `app`."""
        app.include_router(self.router)
        app.add_exception_handler(KlaviyoError, handle_klaviyo_error)
        for shape_error in (KeyError, TypeError, AttributeError):
            app.add_exception_handler(shape_error, self._shape_error)
        app.add_middleware(
            KlaviyoGate,
            ctx=self.ctx,
            spec=self.spec,
            limiter=self.limiter,
        )

    async def _shape_error(self, request: Request, exc: Exception) -> Response:
        """Without the spec, a body of the wrong shape reaches route code: answer 400.

        With the spec loaded such bodies never get that far, so the error is a
        sandbox bug and must surface as a 500.
        """
        if self.spec.available or not request.url.path.startswith("/api"):
            raise exc
        detail = f"The request body does not have the expected shape ({exc!r})."
        return error_response(400, [error_object(400, "invalid", detail)])

    @property
    def store(self) -> KlaviyoStore:
        """The live store (for in-process tests)."""
        return self.deps.store

    def snapshot(self) -> dict[str, Any]:
        """JSON-able ground truth (bulk jobs that are due are applied first)."""
        with self.deps.store.lock:
            for job in list(self.deps.store.jobs.values()):
                bulk_import.refresh(self.deps, job)
            return self.deps.store.snapshot(self.ctx.clock.now())

    def reset(self) -> None:
        """Drop all Klaviyo state and re-seed templates."""
        with self.deps.store.lock:
            self.deps.store = KlaviyoStore()
            account.seed(self.deps)
        self.limiter.reset()
