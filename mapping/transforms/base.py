"""What every transform shares: its type, and the error it raises when it cannot apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Transform = Callable[[Any], Any]
"""A compiled transform: a value → the transformed value (or `TransformError`)."""


class TransformError(ValueError):
    """A transform could not apply to a value; the message is the reason."""
