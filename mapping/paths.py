"""Source paths such as `properties.price`, `$.context.traits.email` or `products[0].sku`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

Getter = Callable[[Any], Any]
"""A compiled path: data → the value at the path, or None."""


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


def walk(data: Any, parts: tuple[str | int, ...]) -> Any:
    """The value at split `parts` of `data`, or None when any step is missing."""
    current: Any = data
    for part in parts:
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


@lru_cache(maxsize=4096)
def compile_getter(path: str) -> Getter:
    """A function reading `path` (same result as `get_path`), built once per path.

    Paths of one to three keys over plain dicts (decoded JSON, the common case) read
    without a loop; anything else takes the general `walk`.

    Raises:
        ValueError: when `path` is not a path.
    """
    parts = compile_path(path)
    if not parts or not all(type(p) is str for p in parts):
        return lambda data: walk(data, parts)
    if len(parts) == 1:
        (a,) = parts

        def one(data: Any) -> Any:
            if type(data) is dict:
                return data.get(a)
            return walk(data, parts)

        return one
    if len(parts) == 2:
        a, b = parts

        def two(data: Any) -> Any:
            if type(data) is dict:
                current = data.get(a)
                if type(current) is dict:
                    return current.get(b)
                if current is None:
                    return None
            return walk(data, parts)

        return two
    if len(parts) == 3:
        a, b, c = parts

        def three(data: Any) -> Any:
            if type(data) is dict:
                current = data.get(a)
                if type(current) is dict:
                    current = current.get(b)
                    if type(current) is dict:
                        return current.get(c)
            return walk(data, parts)

        return three
    return lambda data: walk(data, parts)


def get_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in `data`, or None when any step is missing."""
    return compile_getter(path)(data)
