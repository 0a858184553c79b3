"""One field in generated code: its paths tried in order, else its fallback, else missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mapping.blank import is_blank
from mapping.codegen.blanks import FOUND
from mapping.codegen.chains import emit_transform
from mapping.codegen.paths import Nodes, parts_of
from mapping.codegen.source import Source
from mapping.transforms import Transform

if TYPE_CHECKING:
    from mapping.fields import FieldSpec


def emit_field(
    src: Source,
    name: str,
    spec: FieldSpec,
    nodes: Nodes,
    chain_of: Callable[[FieldSpec], Transform],
) -> None:
    """The lines that set (or fall back, or mark missing or invalid) one field."""
    key = repr(name) if type(name) is str else src.cell("k", name)
    src.add(2, f"# {name!r}: {spec.path or 'value'} {spec.transform or ''}".rstrip())
    if not is_blank(spec.fallback):
        fallback = src.cell("fb", spec.fallback)
        otherwise = [f"values[{key}] = {fallback}", f"fallbacks_used.append({key})"]
    elif spec.required:
        otherwise = [f"missing.append({key})"]
    else:
        otherwise = []
    found = _found(src, spec, nodes)
    if found is None:  # no path and no constant
        for line in otherwise or ["pass"]:
            src.add(2, line)
        return
    body = 2 if found == "" else 3  # a constant is always there
    if found:
        src.add(2, f"if {found}:")
    if spec.transform:
        emit_transform(src, body, key, spec, chain_of, otherwise)
    else:
        src.add(body, f"values[{key}] = v")
    if found and otherwise:
        src.add(2, "else:")
        for line in otherwise:
            src.add(3, line)


def _found(src: Source, spec: FieldSpec, nodes: Nodes) -> str | None:
    """The condition that binds `v` to the field's value when there is one; "" when
    always (a constant); None when never."""
    if not spec.path:
        if is_blank(spec.value):
            return None
        src.add(2, f"v = {src.cell('c', spec.value)}")
        return ""
    tests = []
    for path in spec.path:
        parts = parts_of(path)
        # A path that is not a path raises from `get_path` when reached, as before.
        expr = f"_get_path(data, {path!r})" if parts is None else nodes.ref(parts)
        tests.append(f"({FOUND.format(expr=expr)})")
    return " or ".join(tests)
