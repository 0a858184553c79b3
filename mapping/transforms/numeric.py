"""Number transforms: `to_number` and `minor_units[:X]`, within what JSON carries exactly."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from mapping.currencies import minor_digits
from mapping.transforms.base import Transform, TransformError

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers the senders' JSON encoder (orjson) writes; others make it raise."""

MAX_MINOR_DIGITS = 18
"""The most minor-unit digits `minor_units:N` takes (wei: 10**18 fits in 64 bits)."""

_AMOUNTS = Context(prec=60, rounding=ROUND_HALF_EVEN, Emax=10**6, Emin=-(10**6))
"""Amount arithmetic, exact for every amount that fits (not the thread's context, which
other code may change, and whose 28 digits would round long inputs twice)."""

_QUANTA = [Decimal(1).scaleb(-digits) for digits in range(MAX_MINOR_DIGITS + 1)]

GROUPED_DIGITS = r"\d{1,3}(?:,\d{3})+"
"""A regular-expression part: digits with commas as thousands separators (`1,299`), the
only commas a number written as text may carry. `1,5` is a decimal comma in much of
Europe: read as 15 it would be a silently wrong number, so it never matches."""


def to_number(value: Any) -> int | float:
    """A number from a number or numeric text: a finite float, or an int within 64 bits."""
    kind = type(value)
    if kind is int:  # the common cases first, without `isinstance`
        whole: int = value
        if INT_MIN <= whole <= INT_MAX:
            return whole
        raise TransformError("to_number: an integer outside 64 bits")
    if kind is float:
        real: float = value
        if math.isfinite(real):
            return real
        raise TransformError("to_number: not a finite number")
    if isinstance(value, bool):
        raise TransformError("to_number: a boolean is not a number")
    if isinstance(value, int | float):  # subclasses: as their plain values
        return to_number(int(value) if isinstance(value, int) else float(value))
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise TransformError(f"to_number: not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise TransformError("to_number: not a finite number")
    return _decimal_number(number)


def _decimal_number(number: Decimal) -> int | float:
    if number == number.to_integral_value():
        # `adjusted` first: `int(Decimal("1e999999999"))` would build a billion digits.
        if number.adjusted() > 20:
            raise TransformError("to_number: an integer outside 64 bits")
        return to_number(int(number))
    result = float(number)
    if not math.isfinite(result):
        raise TransformError("to_number: too large for a number")
    if result == 0:  # `1e-400` would silently become 0
        raise TransformError("to_number: too small for a number")
    return result


def minor_units(value: Any, digits: int = 2) -> int:
    """An amount (`12.5`, `"12.50"`) in integer minor units (`1250`), half-even rounded."""
    if isinstance(value, bool):
        raise TransformError("minor_units: a boolean is not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise TransformError(f"minor_units: not an amount: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise TransformError("minor_units: not a finite amount")
    # `adjusted` first: at most 21 digits go on to `_AMOUNTS`, where both steps are exact
    # (one rounding, of the amount as written; `scaleb` first would round to 28 digits).
    if not amount or amount.adjusted() + digits <= 20:
        rounded = amount.quantize(_QUANTA[digits], rounding=ROUND_HALF_EVEN, context=_AMOUNTS)
        units = int(rounded.scaleb(digits, context=_AMOUNTS))
        if INT_MIN <= units <= INT_MAX:
            return units
    raise TransformError(f"minor_units: too large for 64-bit minor units: {str(value)[:40]!r}")


def minor_units_of(arg: str) -> Transform:
    """The transform `minor_units:arg` (`minor_units` when `arg` is empty).

    Raises:
        ValueError: for too many digits, a currency ISO 4217 does not give minor units
            for, or anything else (a config error).
    """
    if not arg:
        digits = 2  # no currency named: cents, as documented
    elif arg.isascii() and arg.isdigit():
        digits = int(arg)
        if digits > MAX_MINOR_DIGITS:
            raise ValueError(f"minor_units takes at most {MAX_MINOR_DIGITS} digits, got {arg!r}")
    elif len(arg) == 3 and arg.isascii() and arg.isalpha():
        try:  # a currency it does not know is refused, never taken for cents
            digits = minor_digits(arg)
        except ValueError as exc:
            raise ValueError(f"minor_units: {exc} (or give the digits: minor_units:0)") from None
    else:
        raise ValueError(f"minor_units takes digits or an ISO 4217 currency code, got {arg!r}")
    return lambda v: minor_units(v, digits)
