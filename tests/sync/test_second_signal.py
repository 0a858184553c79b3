"""A second SIGTERM or SIGINT ends `schedule` and `serve` at once, mid-run.

The first signal asks for a graceful stop, which waits for the batch in flight: here a
source read that would last an hour. The second abandons the run; the lock it leaves
is taken over by the next run on this host (its holder's pid is gone).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.store.locks import release_dead_holder
from sync.store.state import StateStore

CHILD = Path(__file__).with_name("signal_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, command: str) -> Path:
    if command == "schedule":
        source, sync = 'type = "segment"\npath = "."', 'schedule = "* * * * *"'
    else:
        source, sync = 'type = "inbox"', ""
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.events]
{source}
[destinations.esp]
type = "klaviyo"
api_key = "pk_x_123456"
[syncs.main]
source = "events"
destinations = ["esp"]
{sync}
[ingest]
write_keys = ["wk_test_123456"]
shutdown_timeout_seconds = 120
"""
    )
    return path


def _wait_for(ready: Path, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never started:\n" + log.read_text()[-3000:]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("command", "first", "second"),
    [
        ("schedule", signal.SIGTERM, signal.SIGTERM),
        ("schedule", signal.SIGINT, signal.SIGINT),
        ("serve", signal.SIGTERM, signal.SIGTERM),
        ("serve", signal.SIGTERM, signal.SIGINT),
    ],
    ids=["schedule-TERM-TERM", "schedule-INT-INT", "serve-TERM-TERM", "serve-TERM-INT"],
)
def test_a_second_signal_abandons_the_run_and_exits_promptly(
    tmp_path: Path, command: str, first: signal.Signals, second: signal.Signals
) -> None:
    config, ready, log = _config(tmp_path, command), tmp_path / "ready", tmp_path / "child.log"
    extra = ["--port", str(_free_port())] if command == "serve" else []
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(config), str(ready), command, *extra],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(ready, child, log)
        child.send_signal(first)
        time.sleep(0.5)
        assert child.poll() is None, "the graceful stop cannot finish a read that lasts an hour"
        child.send_signal(second)
        started = time.monotonic()
        code = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert time.monotonic() - started < 5
    assert code == 128 + second
    output = log.read_text()
    assert "the current run, if any, is abandoned" in output, output[-3000:]
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    try:
        assert release_dead_holder(store, "main")  # the next run takes the lock over at once
    finally:
        store.close()
