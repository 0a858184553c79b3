"""The Klaviyo half of the sandbox (private API under `/api`, revision 2026-07-15)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from esp_sandbox.context import SandboxContext
from esp_sandbox.klaviyo import account, bulk_import, events, lists, profiles, subscriptions
from esp_sandbox.klaviyo.common import Deps
from esp_sandbox.klaviyo.errors import KlaviyoError, fault_body, handle_klaviyo_error
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
        self.introspection_router = account.introspection_router(self.deps)
        self.fault_body = fault_body
        ctx.notes["klaviyo_spec"] = self.spec.status()
        self.limiter = FixedWindowLimiter(ctx.clock)

    def install(self, app: FastAPI) -> None:
        """Mount routes, the error handler and the gate (auth, revision, limits) on `app`."""
        app.include_router(self.router)
        app.add_exception_handler(KlaviyoError, handle_klaviyo_error)
        app.add_middleware(
            KlaviyoGate,
            ctx=self.ctx,
            spec=self.spec,
            limiter=self.limiter,
        )

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
