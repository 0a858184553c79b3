"""`espbridge sandbox` passes the sandbox's options on and stops it on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from sync.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_help_lists_the_sandbox_options_and_says_what_time_scale_does() -> None:
    result = CliRunner().invoke(
        app, ["sandbox", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    )
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--mailchimp-dc", "--klaviyo-api-key", "--time-scale"):
        assert option in result.stdout
    assert "Multiply" not in result.stdout and "Speed-up of the rate-limit windows" in result.stdout


def test_options_are_passed_on_and_sigterm_stops_the_sandbox() -> None:
    port = _free_port()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.cli",
            "sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--mailchimp-dc",
            "us9",
            "--klaviyo-api-key",
            "pk_sandbox_a",
            "--time-scale",
            "60",
            "--log-level",  # unknown to `espbridge sandbox`: passed on as given
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    try:
        deadline = time.monotonic() + 30
        while True:
            assert parent.poll() is None, "espbridge sandbox exited early"
            kids = _children(parent.pid)
            if kids:
                child = kids[0]
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert [a.decode() for a in argv[1:3]] == ["-m", "esp_sandbox"]
        given = " ".join(a.decode() for a in argv[3:])
        for expected in (
            "--host 127.0.0.1",
            f"--port {port}",
            "--mailchimp-dc us9",
            "--klaviyo-api-key pk_sandbox_a",
            "--time-scale 60.0",
            "--log-level warning",
        ):
            assert expected in given
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        assert not _alive(child), "the sandbox outlived espbridge sandbox"
    finally:
        for pid in (child, parent.pid):
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=10)
