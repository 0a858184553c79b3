"""One operation table serving both HTTP routes and `/batches` operations.

Each Mailchimp operation is a plain function `Call -> Reply`. The same table
is mounted as FastAPI routes (after auth and the connection limit) and used by
the batch executor, so a batched PUT meets exactly the validation and
compliance rules of a direct one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import compile_path

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.auth import authenticate
from esp_sandbox.mailchimp.errors import MailchimpError
from esp_sandbox.mailchimp.limits import ConnectionLimiter
from esp_sandbox.mailchimp.store import MailchimpStore

T = TypeVar("T")


@dataclass
class Call:
    """One operation request, from HTTP or from a batch."""

    method: str
    path: str
    path_params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    base_url: str = ""
    raw_path: str = ""

    def flag(self, name: str) -> bool:
        """A boolean query parameter (`true`/`1`)."""
        return str(self.query.get(name, "")).lower() in ("true", "1")

    def int_param(self, name: str, default: int, maximum: int | None = None) -> int:
        """An integer query parameter, 400 when not an integer."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise errors.invalid_field(name, "Schema describes integer") from exc
        if value < 0 or (maximum is not None and value > maximum):
            raise errors.invalid_field(name, f"{name} must be between 0 and {maximum}")
        return value

    def page(self, items: list[T]) -> list[T]:
        """The slice of a collection that `count` (default 10, max 1000) and `offset` select."""
        offset, count = self.int_param("offset", 0), self.int_param("count", 10, 1000)
        return items[offset : offset + count]

    def object_body(self) -> dict[str, Any]:
        """The body as a JSON object, 400 otherwise."""
        if not isinstance(self.body, dict):
            raise errors.schema_mismatch("", "object", self.body)
        return self.body


@dataclass
class Reply:
    """An operation's answer: status plus JSON body (None means empty)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply]


@dataclass
class Operation:
    """A method + path template (relative to /3.0) + handler."""

    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = compile_path(self.template)[0]


class OperationTable:
    """The Mailchimp operations, matchable by method and path."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """Register an operation."""
        self.operations.append(Operation(method, template, handler))

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """Find the operation for a method and path.

        Raises:
            MailchimpError: 404 for an unknown path, 405 for a known path with
                another method.
        """
        path_known = False
        for op in self.operations:
            found = op.pattern.match(path)
            if found is None:
                continue
            path_known = True
            if op.method == method:
                return op, found.groupdict()
        raise errors.method_not_allowed() if path_known else errors.not_found()

    def run(self, store: MailchimpStore, call: Call) -> Reply:
        """Dispatch a call and turn a `MailchimpError` into its problem reply."""
        with store.lock:
            try:
                op, params = self.match(call.method, call.path)
                call.path_params = params
                return op.handler(call)
            except MailchimpError as exc:
                return problem_reply(store, exc)


def problem_reply(store: MailchimpStore, exc: MailchimpError) -> Reply:
    """A reply carrying a problem document."""
    instance = store.new_uuid()
    return Reply(exc.status, exc.problem(instance), {"x-request-id": instance})


def parse_json(raw: bytes | str | None) -> Any:
    """Parse a JSON request body; empty means None.

    Raises:
        MailchimpError: 400 JSON Parse Error.
    """
    if raw is None or raw in (b"", ""):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.json_parse_error() from exc


def to_response(reply: Reply) -> Response:
    """Render a reply as an HTTP response."""
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    is_problem = reply.status >= 400
    headers = dict(reply.headers)
    if is_problem:
        headers["link"] = errors.DESCRIBED_BY
    return Response(
        orjson.dumps(reply.body),
        status_code=reply.status,
        media_type=errors.PROBLEM_CONTENT_TYPE if is_problem else "application/json",
        headers=headers,
    )


class HttpFront:
    """Mounts an `OperationTable` on a router behind auth and the connection limit."""

    def __init__(
        self, store: MailchimpStore, table: OperationTable, limiter: ConnectionLimiter
    ) -> None:
        self.store = store
        self.table = table
        self.limiter = limiter

    def router(self) -> APIRouter:
        """A router with prefix /3.0: every operation, then a problem+json 404/405."""
        router = APIRouter(prefix="/3.0", tags=["mailchimp"])
        seen: set[str] = set()
        for op in self.table.operations:
            key = f"{op.method} {op.template}"
            if key not in seen:
                seen.add(key)
                router.add_api_route(
                    op.template or "/", self.endpoint, methods=[op.method], include_in_schema=True
                )
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        router.add_api_route("/{unknown:path}", self.endpoint, methods=methods)
        return router

    async def endpoint(self, request: Request) -> Response:
        """Authenticate, hold a connection slot, simulate latency, run the operation."""
        try:
            principal = authenticate(request.headers.get("authorization"), self.store.ctx.config)
        except MailchimpError as exc:
            return to_response(problem_reply(self.store, exc))
        if not self.limiter.acquire(principal):
            refusal = errors.too_many_requests(self.limiter.limit)
            return to_response(problem_reply(self.store, refusal))
        try:
            if self.store.latency_seconds > 0:
                await asyncio.sleep(self.store.ctx.clock.scaled(self.store.latency_seconds))
            return to_response(await self._run(request))
        finally:
            self.limiter.release(principal)

    async def _run(self, request: Request) -> Reply:
        path = request.url.path.removeprefix("/3.0") or "/"
        try:
            body = parse_json(await request.body())
        except MailchimpError as exc:
            return problem_reply(self.store, exc)
        call = Call(
            method=request.method,
            path=path,
            path_params={},
            query=dict(request.query_params),
            body=body,
            base_url=str(request.base_url),
            raw_path=request.url.path,
        )
        return self.table.run(self.store, call)
