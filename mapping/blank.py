"""What counts as no value: the rule every field, fallback and trait check shares."""

from __future__ import annotations

from typing import Any


def is_blank(value: Any) -> bool:
    """True for None, blank strings and empty containers; 0 and False are not blank."""
    if value is None:
        return True
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return False
    if kind is str:
        return not value.strip()
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False
