"""The Segment-compatible ingest API: Tracking API routes, a signed webhook, health, metrics.

A request is answered 200 only after its messages are committed to the inbox. Each
message is judged on its own: refused ones are listed in a 400 (and kept in the
rejects ledger), and the others are stored all the same. Segment libraries do not
retry a 400, and a retried batch is harmless: each messageId is stored once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from sync.ingest.auth import basic_username, is_write_key, webhook_signed
from sync.ingest.body import IngestError, parse_json, read_body
from sync.ingest.inbox import InboxCommit, InboxWriter
from sync.ingest.metrics import IngestMetrics
from sync.ingest.models import (
    CALL_MODELS,
    Accepted,
    Health,
    RefusedMessage,
    SegmentError,
    request_schemas,
)
from sync.ingest.settings import IngestSettings
from sync.ingest.validate import InvalidMessage, ValidMessage, check_message
from sync.store.state import StateStore

TRACKING = "tracking-api"
WEBHOOK = "webhook"
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": SegmentError, "description": "Invalid JSON, too large, or bad messages."},
    401: {"model": SegmentError, "description": "No valid write key or signature."},
    503: {"model": SegmentError, "description": "The inbox could not be written; retry."},
}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = SegmentError(code=code, message=message, **extra).model_dump()
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _refusal(commit: InboxCommit, invalid: Sequence[InvalidMessage]) -> JSONResponse:
    first = invalid[0]
    what = f"batch[{first.index}].{first.field}: {first.reason}"
    more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
    message = f"{len(invalid)} message(s) refused: {what}{more}; the others were stored"
    rejected = [
        RefusedMessage(index=m.index, messageId=m.message_id, field=m.field, reason=m.reason)
        for m in invalid
    ]
    return _error(
        400,
        "invalid_messages",
        message,
        stored=commit.stored,
        duplicates=commit.duplicates,
        rejected=rejected,
    )


class Ingest:
    """The request handling behind the routes."""

    def __init__(
        self,
        settings: IngestSettings,
        store: StateStore,
        metrics: IngestMetrics,
        on_commit: Callable[[], None] | None,
    ) -> None:
        self.settings = settings
        self.writer = InboxWriter(store)
        self.metrics = metrics
        self.on_commit = on_commit

    async def tracking(self, request: Request, call_type: str | None) -> Response:
        """A Tracking API call: `/v1/batch` (call_type None) or a single call."""
        header_key = basic_username(request.headers.get("authorization"))
        if header_key is not None and not is_write_key(header_key, self.settings.write_keys):
            return _error(401, "unauthorized", "unknown write key")
        body = parse_json(await read_body(request, self.settings.max_batch_bytes))
        if not isinstance(body, dict):
            raise IngestError(400, "invalid_request", "the body must be a JSON object")
        if header_key is None and not is_write_key(body.get("writeKey"), self.settings.write_keys):
            return _error(
                401,
                "unauthorized",
                "a write key is required: Basic auth "
                "(write key as username, empty password) or `writeKey` in the body",
            )
        if call_type is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise IngestError(400, "invalid_request", "`batch` must be an array of messages")
        else:
            messages = [body]
        return await self._store(messages, TRACKING, call_type, body.get("sentAt"))

    async def webhook(self, request: Request) -> Response:
        """A delivery of Segment's Webhooks destination, signed with `X-Signature`."""
        secret = self.settings.webhook_secret
        if secret is None:
            return _error(401, "unauthorized", "webhook ingest is off: no webhook_secret")
        raw = await read_body(request, self.settings.max_batch_bytes)
        body = parse_json(raw)
        signed = webhook_signed(
            secret,
            request.headers.get("x-signature"),
            raw,
            body,
            first_event_ok=self.settings.webhook_batch_first_event_signature,
        )
        if not signed:
            return _error(401, "unauthorized", "missing or wrong X-Signature")
        messages = body if isinstance(body, list) else [body]
        return await self._store(messages, WEBHOOK, None, None)

    async def _store(
        self, messages: list[Any], channel: str, call_type: str | None, sent_at: Any
    ) -> Response:
        limit = self.settings.max_batch_messages
        if len(messages) > limit:
            raise IngestError(400, "batch_too_large", f"{len(messages)} messages; at most {limit}")
        now = datetime.now(UTC)
        checked = [
            check_message(
                i,
                m,
                received_at=now,
                sent_at=sent_at,
                call_type=call_type,
                max_bytes=self.settings.max_message_bytes,
            )
            for i, m in enumerate(messages)
        ]
        valid = [c for c in checked if isinstance(c, ValidMessage)]
        invalid = [c for c in checked if isinstance(c, InvalidMessage)]
        self.metrics.received.labels(channel).inc(len(messages))
        try:
            commit = await run_in_threadpool(
                self.writer.commit, valid, invalid, channel=channel, received_at=now
            )
        except sa.exc.SQLAlchemyError:
            return _error(503, "unavailable", "the inbox could not be written; retry")
        self._count(commit, invalid, channel)
        if invalid:
            return _refusal(commit, invalid)
        return JSONResponse(
            Accepted(stored=commit.stored, duplicates=commit.duplicates).model_dump()
        )

    def _count(self, commit: InboxCommit, invalid: Sequence[InvalidMessage], channel: str) -> None:
        self.metrics.stored.labels(channel).inc(commit.stored)
        self.metrics.duplicates.labels(channel).inc(commit.duplicates)
        for m in invalid:
            self.metrics.rejected.labels(channel, m.field).inc()
        if commit.stored and self.on_commit is not None:
            self.on_commit()

    async def health(self) -> JSONResponse:
        """Reach the state store."""
        try:
            newest = await run_in_threadpool(self.writer.max_id)
        except sa.exc.SQLAlchemyError:
            return JSONResponse(Health(status="unavailable").model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", inbox_max_id=newest).model_dump())


def _body_doc(schema_name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _add_routes(app: FastAPI, ingest: Ingest) -> None:
    ok: dict[int | str, dict[str, Any]] = {200: {"model": Accepted, "description": "Stored."}}

    @app.post(
        "/v1/batch",
        responses={**ok, **_ERRORS},
        openapi_extra=_body_doc("BatchRequest"),
        tags=["tracking"],
        summary="Segment batch",
    )
    async def batch(request: Request) -> Response:
        return await ingest.tracking(request, None)

    for call_type, model in CALL_MODELS.items():
        app.add_api_route(
            f"/v1/{call_type}",
            _single(ingest, call_type),
            methods=["POST"],
            responses={**ok, **_ERRORS},
            openapi_extra=_body_doc(model.__name__),
            tags=["tracking"],
            summary=f"Segment {call_type}",
            name=call_type,
        )

    @app.post(
        "/v1/webhook",
        responses={**ok, **_ERRORS},
        tags=["webhook"],
        openapi_extra=_body_doc("WebhookBody") | _signature_doc(),
        summary="Segment Webhooks destination (X-Signature)",
    )
    async def webhook(request: Request) -> Response:
        return await ingest.webhook(request)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Response:
        return await ingest.health()

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        content, media_type = ingest.metrics.render()
        return Response(content, media_type=media_type)


def _signature_doc() -> dict[str, Any]:
    header = {
        "name": "X-Signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "hex HMAC-SHA1 of the raw body",
    }
    return {"parameters": [header]}


def _single(ingest: Ingest, call_type: str) -> Callable[[Request], Any]:
    async def single(request: Request) -> Response:
        return await ingest.tracking(request, call_type)

    return single


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(request_schemas())
            document["components"]["securitySchemes"] = {
                "writeKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Segment write key as username, empty password.",
                }
            }
            app.openapi_schema = document
        return app.openapi_schema

    return build


def create_app(
    settings: IngestSettings,
    store: StateStore,
    *,
    metrics: IngestMetrics | None = None,
    on_commit: Callable[[], None] | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The ingest API over a state store.

    Args:
        settings: Write keys, webhook secret and limits.
        store: The state store holding the inbox and the rejects ledger.
        metrics: Metrics to update (a fresh registry when None).
        on_commit: Called after each commit that stored something (wakes the worker).
        lifespan: Startup/shutdown of whatever runs beside the API (the worker).
    """
    app = FastAPI(
        title="espbridge ingest",
        version="1",
        description="Segment-compatible HTTP Tracking API and Webhooks endpoint.",
        lifespan=lifespan,
    )
    ingest = Ingest(settings, store, metrics or IngestMetrics(), on_commit)
    app.state.ingest = ingest

    @app.exception_handler(IngestError)
    async def refused(request: Request, exc: IngestError) -> Response:
        return _error(exc.status, exc.code, exc.message)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        ingest.metrics.requests.labels(request.url.path[:40], str(response.status_code)).inc()
        return response

    _add_routes(app, ingest)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
