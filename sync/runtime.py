"""Process settings for long batch work, applied by every `espbridge` command."""

from __future__ import annotations

import atexit
import gc


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
