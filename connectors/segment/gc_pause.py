"""Pausing the cyclic garbage collector while a batch of messages is built.

Messages are acyclic, so the collector cannot free any of them; while a batch grows it
only rescans the batch again and again (a quarter of the read time). Sources pause it
while they fill a batch and resume it whenever they hand one out, so the rest of the
process runs with the collector as configured.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the collector inside the block (restoring its previous state after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def gc_resumed() -> Iterator[None]:
    """Enable the collector inside a `gc_paused` block, e.g. around a `yield`."""
    enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not enabled:
            gc.disable()
