"""Field transforms named in TOML: `lower`, `trim`, `e164`, `date:%Y-%m-%d`, `truncate:N`, …

A transform is written `name` or `name:argument` and compiled once (at config load)
into a function. A transform that cannot apply raises `TransformError` with the reason;
`mapping.fields.resolve` then reports the field as invalid, never sends it.

| transform            | does                                                                 |
|----------------------|----------------------------------------------------------------------|
| `trim`               | strip surrounding white space                                        |
| `lower`, `upper`     | change case                                                          |
| `to_string`          | `str()` (true/false for booleans, no trailing `.0` for whole floats) |
| `to_number`          | parse a number from a string (int when whole)                        |
| `e164` / `e164:US`   | phone number to E.164, with a default region for local numbers       |
| `date:FORMAT`        | ISO-8601 / epoch seconds to `strftime(FORMAT)` in UTC                |
| `iso8601`            | ISO-8601 / epoch seconds to `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC)         |
| `truncate:N`         | first N characters                                                   |
| `minor_units[:X]`    | amount to integer minor units; X = digits (`0`) or currency (`JPY`)  |
| `subscriber_hash`    | Mailchimp's MD5 of the lower-cased email                             |
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import phonenumbers

Transform = Callable[[Any], Any]

# ISO 4217 currencies whose minor unit is not 2 digits.
_ZERO_DIGIT = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DIGIT = "BHD IQD JOD KWD LYD OMR TND"
_CURRENCY_DIGITS = {
    **dict.fromkeys(_ZERO_DIGIT.split(), 0),
    **dict.fromkeys(_THREE_DIGIT.split(), 3),
}


class TransformError(ValueError):
    """A transform could not apply to a value; the message is the reason."""


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransformError(f"{name} needs text, got {type(value).__name__}")
    return to_string(value)


def to_string(value: Any) -> str:
    """Text of a scalar: `true`/`false`, `3` for 3.0, JSON-ish for the rest."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value).decode()
    return str(value)


def to_number(value: Any) -> int | float:
    """A number from a number or numeric text."""
    if isinstance(value, bool):
        raise TransformError("to_number: a boolean is not a number")
    if isinstance(value, int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise TransformError(f"to_number: not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise TransformError("to_number: not a finite number")
    return int(number) if number == number.to_integral_value() else float(number)


@lru_cache(maxsize=65536)
def e164(value: str, region: str | None = None) -> str:
    """A phone number in E.164 (`+14155550100`).

    Raises:
        TransformError: when it is not a valid number (or has no country code and no
            region is configured).
    """
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise TransformError(f"e164: not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise TransformError(f"e164: not a valid phone number: {value[:40]!r}")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from ISO-8601 text, a datetime or epoch seconds."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TransformError(f"not an ISO-8601 date or time: {value[:40]!r}") from None
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TransformError(f"not an ISO-8601 date or time: {value[:40]!r}") from None
    else:
        raise TransformError(f"not a date or time: {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
    return int((amount.scaleb(digits)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def subscriber_hash(email: str) -> str:
    """Mailchimp's subscriber hash: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _truncate(arg: str) -> Transform:
    try:
        limit = int(arg)
    except ValueError:
        raise ValueError(f"truncate needs a length, e.g. truncate:100, got {arg!r}") from None
    if limit < 1:
        raise ValueError("truncate needs a length ≥ 1")
    return lambda v: _text(v, "truncate")[:limit]


def _minor(arg: str) -> Transform:
    if not arg:
        digits = 2
    elif arg.isdigit():
        digits = int(arg)
    elif len(arg) == 3 and arg.isalpha():
        digits = _CURRENCY_DIGITS.get(arg.upper(), 2)
    else:
        raise ValueError(f"minor_units takes digits or an ISO currency, got {arg!r}")
    return lambda v: minor_units(v, digits)


def _date(arg: str) -> Transform:
    if not arg:
        raise ValueError("date needs a format, e.g. date:%Y-%m-%d")
    if arg == "%Y-%m-%d":
        return _iso_date
    return lambda v: parse_time(v).strftime(arg)


def _iso_date(value: Any) -> str:
    """`date:%Y-%m-%d` without strftime (several times slower) for four-digit years."""
    parsed = parse_time(value)
    if parsed.year >= 1000:
        return parsed.date().isoformat()
    return parsed.strftime("%Y-%m-%d")


def _e164(arg: str) -> Transform:
    region = arg.upper() or None
    return lambda v: e164(_text(v, "e164").strip(), region)


_SIMPLE: dict[str, Transform] = {
    "trim": lambda v: _text(v, "trim").strip(),
    "lower": lambda v: _text(v, "lower").lower(),
    "upper": lambda v: _text(v, "upper").upper(),
    "to_string": to_string,
    "to_number": to_number,
    "iso8601": lambda v: parse_time(v).isoformat(timespec="milliseconds")[:-6] + "Z",
    "subscriber_hash": lambda v: subscriber_hash(_text(v, "subscriber_hash")),
}
_WITH_ARG: dict[str, Callable[[str], Transform]] = {
    "truncate": _truncate,
    "minor_units": _minor,
    "date": _date,
    "e164": _e164,
}
NAMES = tuple(sorted([*_SIMPLE, *_WITH_ARG]))
"""Every transform name."""


@lru_cache(maxsize=1024)
def compile_transform(text: str) -> Transform:
    """Compile `name` or `name:argument` into a function.

    Raises:
        ValueError: for an unknown name or a bad argument (a config error).
    """
    name, _, arg = text.partition(":")
    name = name.strip()
    if name in _SIMPLE and not arg:
        return _SIMPLE[name]
    if name in _WITH_ARG:
        return _WITH_ARG[name](arg)
    raise ValueError(f"unknown transform {text!r}; expected one of {', '.join(NAMES)}")


def apply_transforms(value: Any, names: Sequence[str]) -> Any:
    """Apply transforms in order.

    Raises:
        TransformError: naming the transform that failed and why.
    """
    for name in names:
        try:
            value = compile_transform(name)(value)
        except TransformError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise TransformError(f"{name}: {exc}") from None
    return value


@lru_cache(maxsize=1024)
def compile_chain(names: tuple[str, ...]) -> Transform:
    """One function applying `names` in order; failures raise `TransformError`."""
    steps = [(name, compile_transform(name)) for name in names]

    def chain(value: Any) -> Any:
        for name, step in steps:
            try:
                value = step(value)
            except TransformError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise TransformError(f"{name}: {exc}") from None
        return value

    return chain
