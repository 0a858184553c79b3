"""A field map compiled into one Python function, generated from its specs.

`mapping.fields.resolve` runs per record over every field of a map; a general loop
pays, per field, for plan look-ups, getter calls, generic blank checks and the transform
chain's loop. The generated function does the same steps with none of that: paths are
inlined as `.get` calls on plain dicts, a path prefix that several fields read is read
once, blank checks are specialised, common transform chains take a fast path
(`mapping.kernels`) and constants are closure cells. Its results are those of
`mapping.fields.resolve_planned`, which it calls for data that is not a plain dict.

Reads happen in the order the plain resolver makes them: the first path of a field is
read when that field's turn comes, a later path only if the earlier ones were blank,
and a path that is not a path raises from `get_path` when reached, as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mapping.blank import BLANK_CHARS, BLANK_STARTS, is_blank
from mapping.kernels import is_canonical_utc, kernel_for, minor_units_memo
from mapping.paths import compile_path, get_path, walk
from mapping.transforms import Transform, TransformError, cut

if TYPE_CHECKING:
    from mapping.fields import FieldSpec, Resolved

Resolver = Callable[[Mapping[str, Any]], "Resolved"]
"""A compiled field map: a record (usually a decoded JSON dict) → its `Resolved`."""

Parts = tuple[str | int, ...]

_TEXT_SHOWS = (
    "((v and not v.isspace()) if v.isascii() else "
    "(v[0] not in _blank_starts or v.strip(_blank_chars)))"
)
"""True when the text `v` is not blank, as `is_blank_text` decides: ASCII text (the
common case; `isascii` reads a flag) can only be blank with white space, which
`isspace` sees at its first other character; other text is stripped of white space and
invisible characters only when its first character is one of them."""

_TEXT_BLANK = (
    "((not v or v.isspace()) if v.isascii() else "
    "(v[0] in _blank_starts and not v.strip(_blank_chars)))"
)
"""`is_blank_text(v)`, inline: the negation of `_TEXT_SHOWS`."""

_FOUND = (
    f"{_TEXT_SHOWS} if type(v := {{expr}}) is str else "
    "(v is not None and (type(v) is int or "
    "(_isfinite(v) if type(v) is float else not _is_blank(v))))"
)
"""Binds `v`; true when it is not blank, as `is_blank` decides, with the common types
tested inline (NaN and infinity are blank floats)."""

_BLANK = (
    f"v is None or ({_TEXT_BLANK} if type(v) is str else "
    "(type(v) is not int and (not _isfinite(v) if type(v) is float else _is_blank(v))))"
)


@dataclass(slots=True)
class _Source:
    """The function's text, and the objects it refers to (bound as closure cells)."""

    lines: list[str] = field(default_factory=list)
    cells: dict[str, Any] = field(default_factory=dict)

    def cell(self, prefix: str, obj: Any) -> str:
        """A cell name holding `obj` (the object itself: identity is kept)."""
        name = f"_{prefix}{len(self.cells)}"
        self.cells[name] = obj
        return name

    def add(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)


def build_resolver(
    fields: Sequence[tuple[str, FieldSpec]],
    *,
    resolved: Callable[[dict[str, Any], list[str], list[str], dict[str, str]], Resolved],
    generic: Resolver,
    chain_of: Callable[[FieldSpec], Transform],
) -> Resolver:
    """Generate, compile and return the resolver of one field map.

    Args:
        fields: (name, spec) in map order.
        resolved: Builds the result (`Resolved`).
        generic: The plain resolver of the same map, for data that is not a dict.
        chain_of: A spec's compiled transform chain (raising as before when it is bad).
    """
    src = _Source()
    src.cells.update(
        _Resolved=resolved,
        _new=object.__new__,
        _generic=generic,
        _is_blank=is_blank,
        _isfinite=math.isfinite,
        _blank_chars=BLANK_CHARS,
        _blank_starts=BLANK_STARTS,
        _walk=walk,
        _get_path=get_path,
        _canon=is_canonical_utc,
        _cut=cut,
        _UNSET=_UNSET,
        TransformError=TransformError,
    )
    nodes = _Nodes([spec for _, spec in fields])
    for name, spec in fields:
        nodes.emit_first(src, spec)
        _emit_field(src, name, spec, nodes, chain_of)
    head = [
        "def resolve_fields(data):",
        "    if type(data) is not dict:",
        "        return _generic(data)",
        "    values = {}",
        "    fallbacks_used = []",
        "    missing = []",
        "    invalid = {}",
        "    _ts = None  # the last text known to be canonical UTC time",
        *(f"    {local} = _UNSET  # read when first needed" for local in sorted(nodes.lazy)),
    ]
    tail = [*_construct(resolved), "return resolve_fields"]
    lines = ["    " + line for line in head] + src.lines + ["    " + line for line in tail]
    text = f"def _factory({', '.join(src.cells)}):\n" + "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {}
    try:
        code = compile(text, "<mapping.codegen>", "exec")
    except (SyntaxError, RecursionError):  # a map too big for the compiler: run it plainly
        return generic
    exec(code, namespace)  # our own text, built from the specs
    function: Resolver = namespace["_factory"](**src.cells)
    function.__doc__ = "Resolve a field map (generated by mapping.codegen):\n\n" + text
    return function


_UNSET = object()
"""A shared node's local before it is read."""

_RESULT_FIELDS = ("values", "fallbacks_used", "missing", "invalid")


def _construct(resolved: Callable[..., Any]) -> list[str]:
    """Lines returning the result: slot by slot for a plain dataclass with exactly these
    fields (its generated `__init__` costs about as much as a field), else a call."""
    if (
        dataclasses.is_dataclass(resolved)
        and isinstance(resolved, type)
        and tuple(f.name for f in dataclasses.fields(resolved)) == _RESULT_FIELDS
        and not hasattr(resolved, "__post_init__")
    ):
        stores = [f"    out.{name} = {name}" for name in _RESULT_FIELDS]
        return ["    out = _new(_Resolved)", *stores, "    return out"]
    return ["    return _Resolved(values, fallbacks_used, missing, invalid)"]


_INLINE_STEPS = 6
"""Deeper paths call `walk` (an inlined step nests parentheses; Python allows 200)."""


def _parts(path: str) -> Parts | None:
    """The split path, or None when it is not a path (it raises when reached)."""
    try:
        return compile_path(path)
    except ValueError:
        return None


class _Nodes:
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
                parts = _parts(path)
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

    def emit_first(self, src: _Source, spec: FieldSpec) -> None:
        """Read the shared nodes on this field's first path, as the plain resolver would."""
        parts = _parts(spec.path[0]) if spec.path else None
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


def _emit_field(
    src: _Source,
    name: str,
    spec: FieldSpec,
    nodes: _Nodes,
    chain_of: Callable[[FieldSpec], Transform],
) -> None:
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
        _emit_transform(src, body, key, spec, chain_of, otherwise)
    else:
        src.add(body, f"values[{key}] = v")
    if found and otherwise:
        src.add(2, "else:")
        for line in otherwise:
            src.add(3, line)


def _found(src: _Source, spec: FieldSpec, nodes: _Nodes) -> str | None:
    """The condition that binds `v` to the field's value when there is one; "" when
    always (a constant); None when never."""
    if not spec.path:
        if is_blank(spec.value):
            return None
        src.add(2, f"v = {src.cell('c', spec.value)}")
        return ""
    tests = []
    for path in spec.path:
        parts = _parts(path)
        # A path that is not a path raises from `get_path` when reached, as before.
        expr = f"_get_path(data, {path!r})" if parts is None else nodes.ref(parts)
        tests.append(f"({_FOUND.format(expr=expr)})")
    return " or ".join(tests)


def _emit_transform(
    src: _Source,
    at: int,
    key: str,
    spec: FieldSpec,
    chain_of: Callable[[FieldSpec], Transform],
    otherwise: list[str],
) -> None:
    """Transform `v` and store it (or fall back, or mark the field invalid), at indent
    `at`; through a fast path where `mapping.kernels` has one."""
    names = tuple(spec.transform)
    kernel = kernel_for(names)
    if kernel is not None and kernel.kind == "minor_units":
        _emit_chain(src, at, key, src.cell("minor", minor_units_memo(names)), otherwise, int)
        return
    chain = src.cell("chain", chain_of(spec))
    if kernel is None:
        _emit_chain(src, at, key, chain, otherwise)
        return
    if kernel.kind == "text":  # str → str: only the blank test is left
        src.add(at, "if type(v) is str:")
        _emit_text(src, at + 1, key, kernel.text_steps, otherwise)
    elif kernel.kind == "iso8601":  # canonical UTC text is its own ISO-8601 form
        src.add(at, "if v is _ts or (type(v) is str and _canon(v)):")
        src.add(at + 1, "_ts = v")
        src.add(at + 1, f"values[{key}] = v")
    else:  # iso_date: the UTC date of canonical UTC text, for years 1000-9999
        src.add(at, "if (v is _ts or (type(v) is str and _canon(v))) and v[0] != '0':")
        src.add(at + 1, "_ts = v")
        src.add(at + 1, f"values[{key}] = v[:10]")
    src.add(at, "else:")
    _emit_chain(src, at + 1, key, chain, otherwise)


def _emit_text(
    src: _Source, at: int, key: str, steps: tuple[str | int, ...], otherwise: list[str]
) -> None:
    """String methods on `v`, then the blank test; a `truncate:N` step (an int) cuts only
    text longer than N, with `cut`, whose failure makes the field invalid.

    Without `truncate` there is no blank test: `v` shows something (a character outside
    `BLANK_CHARS`), and `strip`, `lower` and `upper` keep such a character or turn it
    into another (checked over every code point in tests/mapping/test_blank_values.py).
    """
    cuts = any(type(step) is int for step in steps)
    body = at + 1 if cuts else at
    if body > at:
        src.add(at, "try:")
    suffix = ""
    for step in steps:
        if isinstance(step, str):
            suffix += step
            continue
        if suffix:
            src.add(body, f"v = v{suffix}")
            suffix = ""
        src.add(body, f"if len(v) > {step}:")
        src.add(body + 1, f"v = _cut(v, {step})")
    if suffix:
        src.add(body, f"v = v{suffix}")
    if body > at:
        src.add(at, "except TransformError as exc:")
        src.add(at + 1, f"invalid[{key}] = str(exc)")
        src.add(at, "else:")
    if not cuts:
        src.add(body, f"values[{key}] = v")
        return
    src.add(body, f"if {_TEXT_BLANK}:")
    for line in otherwise or ["pass"]:
        src.add(body + 1, line)
    src.add(body, "else:")
    src.add(body + 1, f"values[{key}] = v")


def _emit_chain(
    src: _Source, at: int, key: str, call: str, otherwise: list[str], result: type | None = None
) -> None:
    """`v = call(v)`: invalid on `TransformError`, else stored or, when blank, fallen back
    (`result=int`: the call returns ints, never blank)."""
    src.add(at, "try:")
    src.add(at + 1, f"v = {call}(v)")
    src.add(at, "except TransformError as exc:")
    src.add(at + 1, f"invalid[{key}] = str(exc)")
    src.add(at, "else:")
    if result is int:
        src.add(at + 1, f"values[{key}] = v")
        return
    src.add(at + 1, f"if {_BLANK}:")
    for line in otherwise or ["pass"]:
        src.add(at + 2, line)
    src.add(at + 1, "else:")
    src.add(at + 2, f"values[{key}] = v")
