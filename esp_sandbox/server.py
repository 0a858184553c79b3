"""Run the sandbox in a background thread: `with SandboxServer(config) as server: ...`."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from esp_sandbox.app import SandboxApp, create_app
from esp_sandbox.context import SandboxConfig
from esp_sandbox.faults import FaultSpec

_READY_TIMEOUT_S = 10.0
PLAIN_HTTP = ssl.create_default_context()
"""One TLS context for every client of the (plain-HTTP) sandbox: building one per
httpx client loads the CA bundle each time and costs ~70 ms."""


class SandboxServer:
    """A real HTTP sandbox on 127.0.0.1, on an ephemeral port unless told otherwise.

    Attributes:
        app: The FastAPI app (its `.sandbox` context is usable in-process).
        url: Base URL, e.g. `http://127.0.0.1:54321`.
    """

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.app: SandboxApp = create_app(self.config)
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._client: httpx.Client | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the sandbox."""
        return f"http://{self.host}:{self._port}"

    @property
    def klaviyo_url(self) -> str:
        """Klaviyo base URL (paths are `/api/...`, as on a.klaviyo.com)."""
        return self.url

    @property
    def mailchimp_url(self) -> str:
        """Mailchimp Marketing API root (`<url>/3.0`)."""
        return f"{self.url}/3.0"

    @property
    def segment_url(self) -> str:
        """Segment Profiles API base (paths are `/v1/spaces/...`)."""
        return self.url

    def start(self) -> SandboxServer:
        """Bind, start uvicorn in a daemon thread, and wait until it answers."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(sock)), name="esp-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.01)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        await self._server.serve(sockets=[sock])

    def stop(self) -> None:
        """Stop uvicorn and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = httpx.Client(timeout=10, verify=PLAIN_HTTP)
        response = self._client.request(method, f"{self.url}/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Every request the ESP routes saw since sequence number `since`."""
        payload: list[dict[str, Any]] = self._call("GET", f"/requests?since={since}")["requests"]
        return payload

    def state(self) -> dict[str, Any]:
        """Ground-truth ESP state (`klaviyo`, `mailchimp`, `segment` keys)."""
        payload: dict[str, Any] = self._call("GET", "/state")
        return payload

    def stats(self) -> dict[str, Any]:
        """Counts per route and outcome, faults injected, notes."""
        payload: dict[str, Any] = self._call("GET", "/stats")
        return payload

    def reset(self) -> None:
        """Forget all ESP state and the request log."""
        self._call("POST", "/reset")

    def set_faults(self, spec: FaultSpec | str | None) -> None:
        """Replace the fault rules (grammar in `esp_sandbox.faults`)."""
        text = spec.render() if isinstance(spec, FaultSpec) else (spec or "")
        self._call("POST", "/faults", json={"spec": text})

    def advance_clock(self, seconds: float) -> None:
        """Jump the sandbox clock forward (expires rate windows, finishes jobs)."""
        self._call("POST", f"/clock/advance?seconds={seconds}")
