"""Source paths such as `properties.price`, `$.context.traits.email` or `products[0].sku`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@lru_cache(maxsize=4096)
def compile_path(path: str) -> tuple[str | int, ...]:
    """Split a path into keys and list indexes; a leading `$.` is optional."""
    text = path[2:] if path.startswith("$.") else path.lstrip("$")
    parts: list[str | int] = []
    for name, index in _TOKEN.findall(text):
        parts.append(int(index) if index else name)
    if not parts and text:
        raise ValueError(f"not a path: {path!r}")
    return tuple(parts)


def get_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in `data`, or None when any step is missing."""
    current: Any = data
    for part in compile_path(path):
        if type(current) is dict and type(part) is str:  # the hot path: decoded JSON
            current = current.get(part)
        elif isinstance(part, int):
            if not isinstance(current, list) or part >= len(current):
                return None
            current = current[part]
        elif isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
        if current is None:
            return None
    return current
