"""The Mailchimp Marketing API 3.0 half of the ESP sandbox.

An independent implementation of the contracts in shared/notes/esp-api-contracts.md §2:
it shares no code with `connectors/`. Mount `MailchimpSandbox(ctx).router`
(paths under `/3.0`) and `introspection_router` (under `/_sandbox/mailchimp`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from esp_sandbox.context import SandboxContext
from esp_sandbox.mailchimp import (
    batch_subscribe,
    events,
    journeys,
    lists,
    member_routes,
    merge_fields,
)
from esp_sandbox.mailchimp.batches import BatchRunner
from esp_sandbox.mailchimp.errors import MailchimpError
from esp_sandbox.mailchimp.limits import ConnectionLimiter
from esp_sandbox.mailchimp.members import member_snapshot
from esp_sandbox.mailchimp.routing import Call, HttpFront, OperationTable, Reply, parse_json
from esp_sandbox.mailchimp.store import (
    SEED_JOURNEY_ID,
    SEED_LIST_ID,
    SEED_STEP_ID,
    Journey,
    MailchimpStore,
)

__all__ = ["SEED_JOURNEY_ID", "SEED_LIST_ID", "SEED_STEP_ID", "MailchimpSandbox"]


class MailchimpSandbox:
    """Fake Mailchimp account: one seeded audience and journey, batches, limits.

    Attributes:
        router: Mailchimp API routes under `/3.0`.
        introspection_router: Sandbox-only helpers, mounted by the core under
            `/_sandbox/mailchimp` (journeys, lists with fixed ids, latency,
            batch result archives).
    """

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.store = MailchimpStore(ctx)
        self.limiter = ConnectionLimiter()
        self.table = OperationTable()
        self.batches = BatchRunner(self.store, self.table)
        audience_of = lists.audience_finder(self.store)
        lists.install(self.table, self.store)
        batch_subscribe.install(self.table, self.store, audience_of)
        merge_fields.install(self.table, self.store, audience_of)
        member_routes.install(self.table, self.store, audience_of)
        events.install(self.table, self.store, audience_of)
        journeys.install(self.table, self.store)
        self.batches.install(self.table)
        self._wrap_with_advance()
        self.router = HttpFront(self.store, self.table, self.limiter).router()
        self.introspection_router = self._admin_router()
        self.reset()

    def _wrap_with_advance(self) -> None:
        """Let batches progress on every call, so state never lags the clock."""
        for op in self.table.operations:
            inner = op.handler

            def handler(call: Call, inner: Any = inner) -> Reply:
                self.batches.advance()
                result: Reply = inner(call)
                return result

            op.handler = handler

    def reset(self) -> None:
        """Back to one empty seeded audience and one journey; no batches."""
        with self.store.lock:
            self.store.lists.clear()
            self.store.journeys.clear()
            self.store.triggers.clear()
            self.store.batches.clear()
            self.store.latency_seconds = 0.0
            lists.create_audience(self.store, "espbridge sandbox audience", list_id=SEED_LIST_ID)
            self.store.journeys[SEED_JOURNEY_ID] = Journey(
                SEED_JOURNEY_ID, "Sandbox journey", SEED_LIST_ID, {SEED_STEP_ID}
            )
        self.limiter.reset()

    def snapshot(self) -> dict[str, Any]:
        """Ground truth: audiences with fields and members, journeys, triggers, batches."""
        self.batches.advance()
        with self.store.lock:
            return {
                "dc": self.ctx.config.mailchimp_dc,
                "lists": {a.id: self._audience_snapshot(a.id) for a in self.store.lists.values()},
                "journeys": [journeys.journey_json(j) for j in self.store.journeys.values()],
                "journey_triggers": [asdict(t) for t in self.store.triggers],
                "batches": [self.batches.batch_json(b) for b in self.store.batches.values()],
                "connections": self.limiter.snapshot(),
            }

    def _audience_snapshot(self, list_id: str) -> dict[str, Any]:
        audience = self.store.lists[list_id]
        return {
            "name": audience.name,
            "merge_fields": {
                tag: {"type": f.type, "required": f.required, "options": f.options}
                for tag, f in audience.merge_fields.items()
            },
            "members": {h: member_snapshot(m) for h, m in audience.members.items()},
            "forgotten": sorted(audience.forgotten),
        }

    def _admin_router(self) -> APIRouter:
        router = APIRouter(tags=["sandbox-mailchimp"])
        journeys.admin_routes(router, self.store)
        store = self.store

        @router.post("/lists", status_code=201)
        async def add_list(request: Request) -> JSONResponse:
            body = parse_json(await request.body()) or {}
            list_id, name = body.get("id"), body.get("name", "sandbox audience")
            with store.lock:
                if list_id in store.lists:
                    return JSONResponse({"error": f"list {list_id} exists"}, status_code=409)
                audience = lists.create_audience(store, str(name), list_id=list_id, body=body)
                try:
                    for field in body.get("merge_fields", []):
                        merge_fields.create_field(audience, dict(field))
                except MailchimpError as exc:
                    del store.lists[audience.id]
                    return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse({"id": audience.id}, status_code=201)

        @router.post("/latency")
        async def set_latency(request: Request) -> dict[str, float]:
            body = parse_json(await request.body()) or {}
            store.latency_seconds = max(0.0, float(body.get("seconds", 0.0)))
            return {"seconds": store.latency_seconds}

        @router.get("/batch-results/{name}")
        def batch_results(name: str) -> Response:
            self.batches.advance()
            batch = store.batches.get(name.removesuffix(".tar.gz"))
            if batch is None or batch.status != "finished":
                return JSONResponse({"error": "no such finished batch"}, status_code=404)
            return Response(batch.archive, media_type="application/x-gzip")

        return router
