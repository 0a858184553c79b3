"""ASGI layer that records every ESP request and applies injected faults.

It sits outside FastAPI's own middleware stack so it sees uvicorn's raw `send`
and can drop the TCP connection: a reset is a real RST with no response
bytes, which is what a client sees when a load balancer or the ESP dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from esp_sandbox.context import SandboxContext
from esp_sandbox.faults import Fault

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
FaultBody = Callable[[int, str], tuple[bytes, str]]

INTROSPECTION_PREFIX = "/_sandbox"


class ConnectionDropped(Exception):
    """Raised where the transport is not reachable (in-process test clients)."""


def _abort(send: Send) -> None:
    """Reset the client's TCP connection now, without sending a response.

    uvicorn passes a bound method of its per-request cycle as `send`; that
    cycle holds the asyncio transport. SO_LINGER 0 turns the close into an RST.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionDropped("connection reset by sandbox fault")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _no_delay(send: Send) -> None:
    """Turn off Nagle on the connection: uvicorn writes headers and body separately,
    and Nagle plus the client's delayed ACK would add ~40 ms to every response."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _abort_and_settle(send: Send) -> None:
    """Abort, then yield so the server notices the disconnect before the app returns.

    Without this uvicorn would see an app that returned without a response on a
    live connection and log an error.
    """
    _abort(send)
    for _ in range(3):
        await asyncio.sleep(0)


class SandboxMiddleware:
    """Records requests and injects faults for every path outside `/_sandbox`."""

    def __init__(
        self,
        app: ASGIApp,
        ctx: SandboxContext,
        fault_bodies: dict[str, FaultBody],
        default_fault_body: FaultBody,
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.fault_bodies = fault_bodies
        self.default_fault_body = default_fault_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        _no_delay(send)
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(INTROSPECTION_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replay = _replayer(body, receive)
        started = time.perf_counter()
        entry = self.ctx.recorder.start(
            time=self.ctx.clock.now().isoformat(),
            method=str(scope["method"]),
            path=path,
            query=_query_pairs(scope),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
        )
        fault = self.ctx.faults.decide(path)
        status_box: list[int] = []
        try:
            await self._dispatch(scope, replay, send, fault, status_box)
        finally:
            status = status_box[0] if status_box else None
            if fault is not None and fault.kind in ("reset_after", "reset_before", "timeout"):
                status = None
            self.ctx.recorder.finish(
                entry,
                route=_route_of(scope, path),
                status=status,
                fault=fault.kind if fault else None,
                duration_ms=(time.perf_counter() - started) * 1000,
            )

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, fault: Fault | None, status: list[int]
    ) -> None:
        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        if fault is None or fault.kind == "partial":
            await self.app(scope, receive, tracking_send)
        elif fault.kind == "slow":
            await asyncio.sleep(fault.value)
            await self.app(scope, receive, tracking_send)
        elif fault.kind == "reset_before":
            await _abort_and_settle(send)
        elif fault.kind == "reset_after":
            await self.app(scope, receive, _swallow_then_abort(send, status))
        elif fault.kind == "timeout":
            await _hang(fault.value, receive)
            await _abort_and_settle(send)
        else:
            await self._error(scope, send, fault, status)

    async def _error(self, scope: Scope, send: Send, fault: Fault, status: list[int]) -> None:
        code = int(fault.kind)
        path = str(scope.get("path", ""))
        shaper = next(
            (fn for prefix, fn in self.fault_bodies.items() if path.startswith(prefix)),
            self.default_fault_body,
        )
        headers: list[tuple[bytes, bytes]] = []
        if code == 429:
            seconds = max(1, math.ceil(fault.value))
            headers.append((b"retry-after", str(seconds).encode()))
            detail = f"Request was throttled. Expected available in {seconds} second."
        else:
            detail = f"Injected sandbox fault: HTTP {code}."
        payload, content_type = shaper(code, detail)
        headers += [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"x-sandbox-fault", fault.kind.encode()),
        ]
        status.append(code)
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _swallow_then_abort(send: Send, status: list[int]) -> Send:
    """A `send` that drops the response and resets the connection at its end."""

    async def swallow(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            await _abort_and_settle(send)

    return swallow


async def _hang(seconds: float, receive: Receive) -> None:
    """Wait `seconds` or until the client gives up, whichever is first."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until_disconnect(), timeout=seconds)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replayer(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(raw, keep_blank_values=True)


def _route_of(scope: Scope, path: str) -> str:
    """The route template FastAPI matched (after the call), else the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return str(template) if template else path
