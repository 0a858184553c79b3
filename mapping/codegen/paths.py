"""Reading paths in generated code: `.get` on plain dicts, shared prefixes read once.

Reads happen in the order the plain resolver makes them: the first path of a field is
read when that field's turn comes, a later path only if the earlier ones were blank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mapping.codegen.source import Source
from mapping.paths import compile_path, get_path, walk

if TYPE_CHECKING:
    from mapping.fields import FieldSpec

Parts = tuple[str | int, ...]

UNSET = object()
"""A shared node's local before it is read."""

CELLS: dict[str, Any] = {"_walk": walk, "_get_path": get_path, "_UNSET": UNSET}
"""The names the generated reads refer to, and what they are."""

_INLINE_STEPS = 6
"""Deeper paths call `walk` (an inlined step nests parentheses; Python allows 200)."""


def parts_of(path: str) -> Parts | None:
    """The split path, or None when it is not a path (it raises when reached)."""
    try:
        return compile_path(path)
    except ValueError:
        return None


class Nodes:
    """Locals for nodes (path prefixes, whole paths) that more than one read needs.

    A node on a field's first path is read when that field's turn comes (the plain
    resolver reads it then too) and is a plain local from there on; a node that only
    later paths need is read when first needed (`_UNSET` until then).
    """

    def __init__(self, specs: list[FieldSpec]) -> None:
        counts: dict[Parts, int] = {}
        firsts: set[Parts] = set()
        for spec in specs:
            for index, path in enumerate(spec.path):
                parts = parts_of(path)
                if not parts:
                    continue
                for end in range(1, len(parts) + 1):
                    counts[parts[:end]] = counts.get(parts[:end], 0) + 1
                if index == 0:
                    firsts.update(parts[:end] for end in range(1, len(parts)))
        shared = [p for p, n in counts.items() if n > 1 or p in firsts]
        self.local = {parts: f"_n{i}" for i, parts in enumerate(shared)}
        self.assigned: set[Parts] = {()}  # read on every way through the function so far
        self.lazy: set[str] = set()  # locals that start as `_UNSET`

    def emit_first(self, src: Source, spec: FieldSpec) -> None:
        """Read the shared nodes on this field's first path, as the plain resolver would."""
        parts = parts_of(spec.path[0]) if spec.path else None
        for end in range(1, len(parts or ()) + 1):
            node = (parts or ())[:end]
            if node not in self.local or node in self.assigned:
                continue
            local, read = self.local[node], self._read(node)
            if local in self.lazy:  # maybe read already, by a later path of an earlier field
                src.add(2, f"if {local} is _UNSET:")
                src.add(3, f"{local} = {read}  # {_show(node)!r}")
            else:
                src.add(2, f"{local} = {read}  # {_show(node)!r}")
            self.assigned.add(node)

    def ref(self, parts: Parts) -> str:
        """An expression for the value at `parts` (None when missing)."""
        if parts == ():
            return "data"
        if parts in self.assigned:
            return self.local[parts]
        if parts in self.local:
            local = self.local[parts]
            self.lazy.add(local)
            return f"({local} if {local} is not _UNSET else ({local} := {self._read(parts)}))"
        if len(parts) > _INLINE_STEPS:
            return f"_walk(data, {parts!r})"
        return self._read(parts)

    def _read(self, parts: Parts) -> str:
        parent = self.ref(parts[:-1])
        return _step(parent, parts[-1], named=parent.isidentifier())


def _step(expr: str, part: str | int, *, named: bool) -> str:
    """One step of `walk`, inlined for plain dicts and lists; `named` when `expr` is a
    local (else it is bound to `_t` on the way: the condition is evaluated first)."""
    node, bind = (expr, expr) if named else ("_t", f"(_t := {expr})")
    other = f"(None if {node} is None else _walk({node}, ({part!r},)))"
    if isinstance(part, int):
        return f"({node}[{part}] if type({bind}) is list and len({node}) > {part} else {other})"
    if node == "data":  # checked once: the generated function only takes dicts
        return f"data.get({part!r})"
    return f"({node}.get({part!r}) if type({bind}) is dict else {other})"


def _show(parts: Parts) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in parts).replace(".[", "[")
