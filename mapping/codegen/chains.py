"""Transforms in generated code: a field's value `v` through its transform chain, by a
fast path where `mapping.kernels` has one, then stored, fallen back or marked invalid."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mapping.codegen.blanks import BLANK, TEXT_BLANK
from mapping.codegen.source import Source
from mapping.kernels import is_canonical_utc, kernel_for, minor_units_memo
from mapping.transforms import Transform, TransformError
from mapping.transforms.text import cut

if TYPE_CHECKING:
    from mapping.fields import FieldSpec

CELLS: dict[str, Any] = {"_canon": is_canonical_utc, "_cut": cut, "TransformError": TransformError}
"""The names the generated transform code refers to, and what they are."""


def emit_transform(
    src: Source,
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
    src: Source, at: int, key: str, steps: tuple[str | int, ...], otherwise: list[str]
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
    src.add(body, f"if {TEXT_BLANK}:")
    for line in otherwise or ["pass"]:
        src.add(body + 1, line)
    src.add(body, "else:")
    src.add(body + 1, f"values[{key}] = v")


def _emit_chain(
    src: Source, at: int, key: str, call: str, otherwise: list[str], result: type | None = None
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
    src.add(at + 1, f"if {BLANK}:")
    for line in otherwise or ["pass"]:
        src.add(at + 2, line)
    src.add(at + 1, "else:")
    src.add(at + 2, f"values[{key}] = v")
