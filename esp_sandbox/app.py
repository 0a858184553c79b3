"""The sandbox FastAPI app: ESP halves plus the `/_sandbox/*` introspection API."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from esp_sandbox.context import SandboxConfig, SandboxContext
from esp_sandbox.faults import FaultSpec, FaultSpecError
from esp_sandbox.klaviyo import KlaviyoSandbox
from esp_sandbox.klaviyo.errors import fault_body as klaviyo_fault_body
from esp_sandbox.middleware import FaultBody, Receive, SandboxMiddleware, Scope, Send

__all__ = ["SandboxApp", "SandboxConfig", "SandboxContext", "create_app"]

log = logging.getLogger(__name__)

# Optional halves written separately: (module, class, key in /_sandbox/state, path prefix).
_OPTIONAL_HALVES = (
    ("esp_sandbox.mailchimp", "MailchimpSandbox", "mailchimp", "/3.0"),
    ("esp_sandbox.segment", "ProfilesSandbox", "segment", "/v1"),
)


class EspHalf(Protocol):
    """What every ESP half offers the core."""

    router: APIRouter

    def snapshot(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


def _mailchimp_fault_body(status: int, detail: str) -> tuple[bytes, str]:
    titles = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": titles.get(status, "Bad Gateway"),
        "status": status,
        "detail": detail,
        "instance": "00000000-0000-0000-0000-000000000000",
    }
    return orjson.dumps(body), "application/problem+json; charset=utf-8"


def _segment_fault_body(status: int, detail: str) -> tuple[bytes, str]:
    code = "rate_limit_error" if status == 429 else "server_error"
    return orjson.dumps({"error": {"code": code, "message": detail}}), "application/json"


class SandboxApp(FastAPI):
    """FastAPI app whose outermost ASGI layer records requests and injects faults."""

    sandbox: SandboxContext
    halves: dict[str, EspHalf]
    _outer: SandboxMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route every request through `SandboxMiddleware` before FastAPI's own stack."""
        if self._outer is None:
            bodies: dict[str, FaultBody] = {
                "/api": klaviyo_fault_body,
                "/3.0": _mailchimp_fault_body,
                "/v1": _segment_fault_body,
            }
            for name, half in self.halves.items():
                custom = getattr(half, "fault_body", None)
                prefix = {"mailchimp": "/3.0", "segment": "/v1"}.get(name)
                if callable(custom) and prefix:
                    bodies[prefix] = custom
            self._outer = SandboxMiddleware(
                super().__call__, self.sandbox, bodies, klaviyo_fault_body
            )
        await self._outer(scope, receive, send)


def create_app(config: SandboxConfig | None = None) -> SandboxApp:
    """Build the sandbox app.

    Args:
        config: Sandbox configuration; defaults to `SandboxConfig()`.

    Returns:
        A FastAPI app serving Klaviyo under `/api`, Mailchimp under `/3.0` and
        Segment Profiles under `/v1/spaces` (when those halves are installed),
        and the introspection API under `/_sandbox`.
    """
    ctx = SandboxContext.from_config(config or SandboxConfig())
    app = SandboxApp(title="espbridge ESP sandbox", docs_url=None, redoc_url=None)
    app.sandbox = ctx
    klaviyo = KlaviyoSandbox(ctx)
    app.halves = {"klaviyo": klaviyo}
    klaviyo.install(app)
    for module_name, class_name, key, _prefix in _OPTIONAL_HALVES:
        half = _load_half(module_name, class_name, ctx)
        if half is not None:
            app.halves[key] = half
            app.include_router(half.router)
    app.include_router(_introspection_router(app))
    return app


def _load_half(module_name: str, class_name: str, ctx: SandboxContext) -> EspHalf | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise
    cls = getattr(module, class_name, None)
    if cls is None:
        log.warning("%s has no %s; not mounted", module_name, class_name)
        return None
    half: EspHalf = cls(ctx)
    return half


def _introspection_router(app: SandboxApp) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])
    ctx = app.sandbox

    @router.get("/requests")
    async def requests_log(since: int = 0, limit: int | None = None) -> dict[str, Any]:
        items = ctx.recorder.requests(since=since, limit=limit)
        next_since = items[-1]["seq"] + 1 if items else since
        return {"requests": items, "next_since": next_since, "total": ctx.recorder.count()}

    @router.get("/state")
    async def state() -> Response:
        snap = {name: half.snapshot() for name, half in app.halves.items()}
        return Response(orjson.dumps(snap, default=str), media_type="application/json")

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        for half in app.halves.values():
            half.reset()
        ctx.recorder.reset()
        ctx.faults.reset()
        return {"reset": True}

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return {"spec": ctx.faults.spec.render(), "injected": ctx.faults.injected()}

    @router.post("/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            payload = orjson.loads(raw) if raw else {}
            text = payload.get("spec") if isinstance(payload, dict) else payload
            spec = FaultSpec.parse(text if isinstance(text, str) else None)
        except (orjson.JSONDecodeError, FaultSpecError) as exc:
            raise HTTPException(400, str(exc)) from exc
        ctx.faults.set_spec(spec)
        return {"spec": spec.render()}

    @router.post("/clock/advance")
    async def advance(seconds: float) -> dict[str, str]:
        ctx.clock.advance(seconds)
        return {"now": ctx.clock.now().isoformat()}

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(
            {
                "routes": ctx.recorder.stats(),
                "faults_injected": ctx.faults.injected(),
                "halves": sorted(app.halves),
                "notes": dict(ctx.notes),
            }
        )

    for name, half in app.halves.items():
        extra = getattr(half, "introspection_router", None)
        if isinstance(extra, APIRouter):
            router.include_router(extra, prefix=f"/{name}")
    return router
