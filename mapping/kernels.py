"""Fast paths for common transform chains, used by the generated field resolvers.

A kernel handles only inputs whose result it can produce without the general code, and
hands everything else (other types, unusual text, failures) to the transform chain
compiled by `mapping.transforms.compile_chain`, so results and error messages are the
chain's own. Kinds of kernel:

- `text`: chains of `trim`, `lower`, `upper` and `truncate:N`, which on a `str` are plain
  string methods (`text_of` returns a `str` unchanged); `truncate:N` calls
  `mapping.transforms.text.cut` only for text longer than N (which may fail, as in the
  chain).
- `iso8601` and `date:%Y-%m-%d` on canonical UTC text (`2026-01-05T00:05:33.118Z`):
  `iso8601` of such text is the text itself and the date is its first ten characters;
  `datetime.isoformat` costs about as much as all the other fields of a record.
- `minor_units[:X]` of a float, int or str, memoised per type: prices repeat (a
  catalogue), and `Decimal` arithmetic is slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from mapping.transforms import Transform, compile_chain

KernelKind = Literal["text", "iso8601", "iso_date", "minor_units"]

MEMO_LIMIT = 65536
"""Entries a `minor_units` memo holds before it starts over (bounds memory)."""

_STRING_OPS = {"trim": ".strip()", "lower": ".lower()", "upper": ".upper()"}
_fromisoformat = datetime.fromisoformat


@dataclass(frozen=True, slots=True)
class Kernel:
    """How the generator may specialise one transform chain.

    Attributes:
        kind: Which fast path applies.
        text_steps: For `text`, in order: a Python suffix applied to a `str` (`.strip()`)
            or, for `truncate:N`, the limit N.
    """

    kind: KernelKind
    text_steps: tuple[str | int, ...] = ()


def kernel_for(names: tuple[str, ...]) -> Kernel | None:
    """The fast path for a chain of transform names, or None when there is none.

    Only chains that `compile_chain` accepts get one: a bad chain keeps failing as
    the plain resolver fails.
    """
    try:
        compile_chain(names)
    except ValueError:
        return None
    parsed = [_split(name) for name in names]
    if len(parsed) == 1:
        name, arg = parsed[0]
        if name == "iso8601" and not arg:
            return Kernel("iso8601")
        if name == "date" and arg == "%Y-%m-%d":  # compared unstripped, as `_date` does
            return Kernel("iso_date")
        if name == "minor_units":
            return Kernel("minor_units")
    ops = [_text_op(name, arg) for name, arg in parsed]
    if ops and all(op is not None for op in ops):
        return Kernel("text", tuple(op for op in ops if op is not None))
    return None


def _split(text: str) -> tuple[str, str]:
    name, _, arg = text.partition(":")  # as `compile_transform` reads it
    return name.strip(), arg


def _text_op(name: str, arg: str) -> str | int | None:
    if name in _STRING_OPS and not arg:
        return _STRING_OPS[name]
    if name == "truncate":
        return int(arg)  # valid: `compile_chain` accepted it
    return None


def is_canonical_utc(text: str) -> bool:
    """True for valid `YYYY-MM-DDTHH:MM:SS.mmmZ` text, which `iso8601` leaves unchanged.

    The shape pins how `datetime.fromisoformat` reads every field (a calendar date,
    three fraction digits, UTC), so formatting the parsed time gives back the same text;
    parsing it still rejects impossible dates such as February 30th. Hour 24 is left to
    the chain: a Python that accepts it rolls over to the next day.
    """
    if len(text) != 24 or text[23] != "Z" or text[4:20:3] != "--T::." or text[11:13] == "24":
        return False
    try:
        _fromisoformat(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=256)
def minor_units_memo(names: tuple[str, ...]) -> Callable[[Any], Any]:
    """`compile_chain(names)` (one `minor_units` step) memoised for float, int and str.

    One memo per type: equal values of one type give equal minor units (the amount is
    read from `str(value)`; `-0.0` and `0.0` both give 0), but an int and the float
    equal to it need not (`str(float(2**60))` is rounded). Failures are not memoised;
    they raise from the chain each time.
    """
    chain: Transform = compile_chain(names)
    memos: dict[type, dict[Any, Any]] = {float: {}, int: {}, str: {}}
    floats, ints, texts = memos[float].get, memos[int].get, memos[str].get

    def fill(value: Any) -> Any:
        result = chain(value)
        memo = memos[type(value)]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[value] = result
        return result

    def minor(value: Any) -> Any:
        kind = type(value)
        if kind is float:
            found = floats(value)
        elif kind is str:
            found = texts(value)
        elif kind is int:
            found = ints(value)
        else:
            return chain(value)
        return fill(value) if found is None else found

    return minor
