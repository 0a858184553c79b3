"""The Segment-compatible ingest API: Tracking API routes, a signed webhook, health, metrics.

`create_app` wires the routes (handled by `sync.ingest.handlers.Ingest`) and an OpenAPI
document whose request bodies are the models of `sync.ingest.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.ingest.body import IngestError
from sync.ingest.handlers import Ingest, error_response
from sync.ingest.metrics import IngestMetrics
from sync.ingest.models import CALL_MODELS, Accepted, Health, SegmentError, request_schemas
from sync.ingest.settings import IngestSettings
from sync.store.state import StateStore

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": SegmentError, "description": "Invalid JSON, too large, or bad messages."},
    401: {"model": SegmentError, "description": "No valid write key or signature."},
    408: {"model": SegmentError, "description": "The body did not arrive in time; retry."},
    503: {"model": SegmentError, "description": "The inbox could not be written; retry."},
}


_KNOWN_PATHS = frozenset(
    [
        f"/v1/{name}"
        for name in ("batch", "b", "webhook", *CALL_MODELS, *(t[0] for t in CALL_MODELS))
    ]
    + ["/healthz", "/metrics", "/openapi.json"]
)


class CountRequests:
    """Counts answers by route and status (plain ASGI: cheaper than `BaseHTTPMiddleware`)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, noting the status of the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                path = str(scope.get("path", ""))
                route = path if path in _KNOWN_PATHS else "other"  # bounded label values
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, noting)


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

    # Analytics.js posts to `<apiHost>/t|i|p|s|a|g` and, batching, to `<apiHost>/b`.
    app.add_api_route("/v1/b", batch, methods=["POST"], include_in_schema=False)
    for call_type in CALL_MODELS:
        app.add_api_route(
            f"/v1/{call_type[0]}",
            _single(ingest, call_type),
            methods=["POST"],
            include_in_schema=False,
            name=f"{call_type}_short",
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
        return error_response(exc.status, exc.code, exc.message)

    app.add_middleware(CountRequests, metrics=ingest.metrics)
    if settings.cors_origins:  # browsers (Analytics.js) post from the site's origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["POST"],
            allow_headers=["*"],
        )
    _add_routes(app, ingest)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
