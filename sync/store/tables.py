"""Imports every module that registers tables on `schema.metadata`.

Add a line here when an area gains tables of its own.
"""

from __future__ import annotations

from sync.store import (
    identity,  # noqa: F401
    inbox,  # noqa: F401
    schema,  # noqa: F401
    triggers,  # noqa: F401
)
