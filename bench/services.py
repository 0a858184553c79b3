"""What the real-time benchmarks share: child processes on 127.0.0.1, and reading which
events reached the sandbox's Klaviyo from its request log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`python <args>` from the repository root, its output into `log`."""
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until `url` answers; exit with the log's tail if `proc` dies or 60 s pass."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"{url} did not come up")


def _key(event: dict[str, Any]) -> str:
    """The messageId an event carries; `trigger:<messageId>` for the trigger's emission."""
    source = event.get("properties", {}).get("source_message_id")
    return f"trigger:{source}" if source else str(event["unique_id"])


def unique_ids(request: dict[str, Any]) -> list[str]:
    """The event keys one logged Klaviyo request carried (single or bulk)."""
    body = request.get("body") or {}
    attributes = body.get("data", {}).get("attributes", {}) if isinstance(body, dict) else {}
    if request["path"] == "/api/events":
        return [_key(attributes)]
    if request["path"] == "/api/event-bulk-create-jobs":
        return [
            _key(event["attributes"])
            for entry in attributes["events-bulk-create"]["data"]
            for event in entry["attributes"]["events"]["data"]
        ]
    return []
