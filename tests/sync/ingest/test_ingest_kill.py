"""kill -9 of `serve` under load: no acknowledged event is lost, none is applied twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sync.ingest.helpers import WRITE_KEY, sandbox_events, track

sandbox = pytest.importorskip("esp_sandbox.server")
sandbox_context = pytest.importorskip("esp_sandbox.context")

ROOT = Path(__file__).resolve().parents[3]
BATCH = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(state_url: str, klaviyo_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.sync.ingest.serve_child", state_url, klaviyo_url, str(port)],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return child
        except httpx.TransportError:
            time.sleep(0.05)
        assert child.poll() is None, log.read_text()[-2000:]
    raise AssertionError("serve did not start:\n" + log.read_text()[-2000:])


class Load:
    """Posts batches from a few threads; remembers what was acknowledged with a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(3)]

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, auth=(WRITE_KEY, ""), timeout=5) as client:
            n = 0
            while not self.stop.is_set():
                ids = [f"k{worker}-{n}-{i}" for i in range(BATCH)]
                n += 1
                body = {
                    "batch": [track(m, userId=f"u{worker}", context=_email(worker)) for m in ids]
                }
                try:
                    response = client.post("/v1/batch", json=body)
                except httpx.TransportError:
                    time.sleep(0.02)  # the server is down: this batch was not acknowledged
                    continue
                if response.status_code == 200:
                    with self._lock:
                        self.acked += ids

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _email(worker: int) -> dict[str, Any]:
    return {"traits": {"email": f"u{worker}@example.com"}}


def _applied(state: dict[str, Any]) -> Counter[str]:
    found: Counter[str] = Counter()
    for metrics in state["klaviyo"]["events"].values():
        for events in metrics.values():
            found.update(e["unique_id"] for e in events)
    return found


@pytest.fixture
def esp() -> Iterator[Any]:
    with sandbox.SandboxServer(sandbox_context.SandboxConfig(time_scale=60)) as server:
        yield server


def test_kill_9_under_load_loses_nothing_acknowledged(esp: Any, tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    port = _free_port()
    log = tmp_path / "serve.log"
    child = _start(state_url, esp.klaviyo_url, port, log)
    try:
        with Load(f"http://127.0.0.1:{port}") as load:
            time.sleep(1.5)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            acked_before_kill = len(load.acked)
            child = _start(state_url, esp.klaviyo_url, port, log)
            time.sleep(1.0)
        acked = set(load.acked)
        assert acked_before_kill > 0

        deadline = time.monotonic() + 60
        while not acked <= set(_applied(esp.state())):
            assert time.monotonic() < deadline, (
                f"missing: {len(acked - set(_applied(esp.state())))}"
            )
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)

    applied = _applied(esp.state())
    assert all(applied[m] == 1 for m in acked)  # each acknowledged event applied once
    assert max(applied.values()) == 1  # nothing applied twice, acknowledged or not
    # Re-sent (same unique_id, deduplicated by Klaviyo): at most the batch in flight.
    resent = sum(n - 1 for n in sandbox_events(esp.requests()).values())
    assert resent <= 100, resent
    # SIGTERM: a graceful shutdown (uvicorn then re-raises the signal, hence -15).
    assert child.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()
