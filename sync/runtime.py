"""Process settings for long batch work, applied by every `espbridge` command."""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading

log = logging.getLogger("espbridge")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_watching = False  # set once `exit_on_second_signal` has started its thread


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a process that streams messages.

    Freezing moves everything imported so far (modules, pydantic schemas, the spec
    validators) out of the collector's sight, so a full collection no longer rescans it;
    a larger first-generation threshold stops the collector from running every 700
    allocations while a batch of acyclic messages is built (a batch of 5,000 messages
    holds some 100,000 containers at once; each young collection walks them all, only
    to find them alive). Cycles are still collected.
    """
    gc.freeze()
    # Frozen objects are never collected, even at exit: extension modules that check
    # for leaks when they are torn down (DuckDB's nanobind) would print pages of them.
    atexit.register(gc.unfreeze)
    gc.set_threshold(300_000, 20, 100)


def exit_on_second_signal() -> None:
    """Let a second SIGTERM or SIGINT end the process at once, whoever handled the first.

    The first asks for a graceful stop (the current batch finishes and commits), and the
    command's own handler, or uvicorn's in `serve`, deals with it. A graceful stop can
    wait on a long warehouse query, an ESP's backoff or `serve`'s shutdown timeout; an
    operator who signals again wants out now. The run is then abandoned: nothing it has
    not committed counts as sent, and its lock is taken over by the next run on this
    host (its holder's pid is gone) or expires (`sync.engine.LOCK_TTL`).

    Signals are counted from the wakeup fd, which the interpreter writes for every
    signal that has a Python handler, on a thread of its own: that sees the second
    signal even while the handlers are uvicorn's, and even while the main thread is
    blocked in a driver call. Call it from the main thread (Python sets the wakeup fd
    only there).
    """
    global _watching
    if _watching:  # one watcher per process: a second would count every signal twice
        return
    _watching = True
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(
        target=_watch, args=(reader, writer), name="second-signal", daemon=True
    ).start()


def _watch(reader: socket.socket, writer: socket.socket) -> None:
    """Count stop signals; exit at the second (`writer` is kept open by this frame)."""
    seen = 0
    while data := reader.recv(64):
        for number in data:
            if number not in _STOP_SIGNALS:
                continue
            seen += 1
            if seen >= 2:
                _abandon(signal.Signals(number))
            log.warning(
                "%s: stopping after the current batch, if any (send it again to exit now)",
                signal.Signals(number).name,
            )
    writer.close()


def _abandon(received: signal.Signals) -> None:
    log.error(
        "%s again while stopping: exiting now; the current run, if any, is abandoned (what "
        "it committed stays; its lock is taken over by the next run on this host, or expires)",
        received.name,
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed: nothing more to say there
            stream.flush()
    # Not sys.exit: interpreter shutdown waits for the worker threads, the very source
    # read or request that made the graceful stop too slow.
    os._exit(128 + received)
