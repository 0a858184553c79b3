"""Introspection API, server conveniences, CLI, in-process app, and the spec fallback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from esp_sandbox.app import create_app
from esp_sandbox.context import SandboxConfig
from esp_sandbox.faults import FaultSpec
from esp_sandbox.klaviyo.spec import shared_spec
from esp_sandbox.server import PLAIN_HTTP, SandboxServer
from esp_sandbox.testing import event_body, klaviyo_client, klaviyo_headers

REPO = Path(__file__).resolve().parents[2]


def test_request_log_redacts_secrets_and_parses_bodies(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        client.post("/api/events?api_key=topsecret&x=1", json=event_body(unique_id="1"))
        client.post("/api/events", content=b"not json", headers={"X-Api-Token": "t0ken"})
    first, second = server.requests()
    assert first["headers"]["authorization"] == "[secure]"
    assert first["query"] == {"api_key": "[secure]", "x": "1"}
    assert first["body"]["data"]["attributes"]["unique_id"] == "1"
    assert (first["method"], first["path"], first["status"]) == ("POST", "/api/events", 202)
    assert second["body"] == "not json" and second["status"] == 400
    assert second["headers"]["x-api-token"] == "[secure]"
    assert "pk_sandbox_test_key" not in str(server.requests())
    assert [r["seq"] for r in server.requests(since=1)] == [1]


def test_requests_paging_and_stats(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        for i in range(3):
            client.post("/api/events", json=event_body(unique_id=str(i)))
        client.get("/api/profiles/NOPE")
    page = httpx.get(f"{server.url}/_sandbox/requests?since=1&limit=2", verify=PLAIN_HTTP).json()
    assert [r["seq"] for r in page["requests"]] == [1, 2]
    assert (page["next_since"], page["total"]) == (3, 4)
    stats = server.stats()
    assert stats["routes"]["POST /api/events"] == {"202": 3}
    assert stats["routes"]["GET /api/profiles/{id}"] == {"404": 1}
    assert "klaviyo" in stats["halves"]
    # Where the official spec is present, bodies are checked against it; else it says so.
    expected = "revision 2026-07-15" if shared_spec().available else "minimal structural checks"
    assert expected in stats["notes"]["klaviyo_spec"]


def test_reset_clears_state_log_and_fault_counts(server: SandboxServer) -> None:
    server.set_faults("500=1#1")
    with klaviyo_client(server) as client:
        client.post("/api/events", json=event_body())
        client.post("/api/events", json=event_body())
    assert server.state()["klaviyo"]["event_count"] == 1
    server.reset()
    assert server.requests() == []
    assert server.state()["klaviyo"]["event_count"] == 0
    assert server.stats()["faults_injected"] == {}
    assert len(server.state()["klaviyo"]["templates"]) == 2


def test_fault_endpoint_validates_and_reports(server: SandboxServer) -> None:
    bad = httpx.post(f"{server.url}/_sandbox/faults", json={"spec": "explode=1"}, verify=PLAIN_HTTP)
    assert bad.status_code == 400
    server.set_faults(FaultSpec.parse("slow=0.5:0.01,429@/api/events*=0.1"))
    current = httpx.get(f"{server.url}/_sandbox/faults", verify=PLAIN_HTTP).json()
    assert current["spec"] == "slow=0.5:0.01,429@/api/events*=0.1"


def test_state_has_every_half(server: SandboxServer) -> None:
    state = server.state()
    assert {"profiles", "events", "lists", "subscriptions", "bulk_import_jobs"} <= set(
        state["klaviyo"]
    )
    for half in server.app.halves:
        assert half in state


def test_urls(server: SandboxServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.klaviyo_url == server.url
    assert server.mailchimp_url == f"{server.url}/3.0"


async def test_app_works_in_process_without_a_socket() -> None:
    app = create_app(SandboxConfig())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        response = await client.post("/api/events", json=event_body(), headers=klaviyo_headers())
        state = (await client.get("/_sandbox/state")).json()
    assert response.status_code == 202
    assert state["klaviyo"]["event_count"] == 1


def test_spec_fallback_is_reported(
    monkeypatch: pytest.MonkeyPatch, sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    monkeypatch.setenv("ESPBRIDGE_KLAVIYO_SPEC", str(tmp_path / "missing.json"))
    server = sandbox()
    assert "minimal structural checks only" in server.stats()["notes"]["klaviyo_spec"]
    with klaviyo_client(server) as client:
        assert client.post("/api/events", json=event_body()).status_code == 202
        assert client.post("/api/events", json={"nodata": 1}).status_code == 400
        shapeless = client.post("/api/events", json={"data": {"type": "event"}})
        assert shapeless.status_code == 400
        assert shapeless.json()["errors"][0]["code"] == "invalid"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_rejects_bad_fault_spec() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "esp_sandbox", "--faults", "nope=1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 2
    assert "bad fault rule" in run.stderr or "unknown fault kind" in run.stderr


def test_cli_serves_until_terminated() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "esp_sandbox",
            "--port",
            str(port),
            "--time-scale",
            "60",
            "--faults",
            "503=0.5",
            "--seed",
            "3",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                stats = httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults", verify=PLAIN_HTTP)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sandbox CLI did not start"
                time.sleep(0.1)
        assert stats.json()["spec"] == "503=0.5"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_sandbox_never_imports_product_packages() -> None:
    code = (
        "import sys, esp_sandbox.app, esp_sandbox.server, esp_sandbox.testing;"
        "top = {m.split('.')[0] for m in sys.modules};"
        "bad = sorted(top & {'connectors', 'mapping', 'sync'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    sources = "\n".join(p.read_text() for p in (REPO / "esp_sandbox").rglob("*.py"))
    for package in ("connectors", "mapping", "sync"):
        assert f"import {package}" not in sources and f"from {package}" not in sources


def test_recorder_keeps_newest_entries_but_counts_all() -> None:
    from esp_sandbox.recorder import Recorder

    recorder = Recorder(max_entries=3)
    for i in range(5):
        entry = recorder.start(
            time="t", method="GET", path=f"/api/{i}", query=[], headers=[], body=b""
        )
        recorder.finish(entry, route="/api/x", status=200, fault=None, duration_ms=1.0)
    assert [r["seq"] for r in recorder.requests()] == [2, 3, 4]
    assert [r["seq"] for r in recorder.requests(since=3, limit=1)] == [3]
    assert recorder.count() == 5
    assert recorder.stats() == {"GET /api/x": {"200": 5}}
