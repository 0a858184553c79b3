"""Field transforms named in TOML: `lower`, `trim`, `e164`, `date:%Y-%m-%d`, `truncate:N`, …

A transform is written `name` or `name:argument` and compiled once (at config load)
into a function. A transform that cannot apply raises `TransformError` with the reason;
`mapping.fields.resolve` then reports the field as invalid, never sends it.

| transform            | does                                                                 |
|----------------------|----------------------------------------------------------------------|
| `trim`               | strip surrounding white space                                        |
| `lower`, `upper`     | change case                                                          |
| `to_string`          | `str()` (true/false for booleans, no trailing `.0` for whole floats) |
| `to_number`          | parse a number from a string (int when whole, within 64 bits)        |
| `e164` / `e164:US`   | phone number to E.164, with a default region for local numbers       |
| `date:FORMAT`        | ISO-8601 / epoch seconds to `strftime(FORMAT)` in UTC                |
| `iso8601`            | ISO-8601 / epoch seconds to `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC)         |
| `truncate:N`         | at most N characters, never splitting a user-perceived character     |
| `minor_units[:X]`    | amount to integer minor units; X = digits (`0`) or currency (`JPY`)  |
| `subscriber_hash`    | Mailchimp's MD5 of the lower-cased email                             |

Numbers that JSON or the senders cannot carry exactly are failures, not values: NaN and
infinity, whole floats of 2**53 or more as text (their digits are the decoder's
rounding, not the source's) and integers outside 64 bits (the encoders' limit). A NaN or
infinite float read from a path never gets here: it is blank (`mapping.blank`), so the
next path or the fallback applies; text such as "NaN" does, and fails.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import phonenumbers
import regex

from mapping.currencies import minor_digits

Transform = Callable[[Any], Any]


INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers the senders' JSON encoder (orjson) writes; others make it raise."""

_EXACT_FLOAT = 2.0**53
"""From here on, consecutive whole floats are more than 1 apart."""

MAX_MINOR_DIGITS = 18
"""The most minor-unit digits `minor_units:N` takes (wei: 10**18 fits in 64 bits)."""

_AMOUNTS = Context(prec=60, rounding=ROUND_HALF_EVEN, Emax=10**6, Emin=-(10**6))
"""Amount arithmetic, exact for every amount that fits (not the thread's context, which
other code may change, and whose 28 digits would round long inputs twice)."""

_QUANTA = [Decimal(1).scaleb(-digits) for digits in range(MAX_MINOR_DIGITS + 1)]


class TransformError(ValueError):
    """A transform could not apply to a value; the message is the reason."""


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransformError(f"{name} needs text, got {type(value).__name__}")
    return _float_text(value, name) if isinstance(value, float) else str(value)


def to_string(value: Any) -> str:
    """Text of a scalar: `true`/`false`, `3` for 3.0, JSON-ish for the rest.

    Raises:
        TransformError: for NaN and infinity, and whole floats of 2**53 or more (an id
            such as 12345678901234567890 sent as a JSON number arrives rounded).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and -_EXACT_FLOAT < value < _EXACT_FLOAT:
            return str(int(value))  # the common case, inline (this runs per value)
        return _float_text(value, "to_string")
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value).decode()
    return str(value)


def _float_text(value: float, name: str) -> str:
    if value.is_integer():
        if abs(value) >= _EXACT_FLOAT:
            raise TransformError(
                f"{name}: {value!r} is too large to be exact as a number; send it as text"
            )
        return str(int(value))
    if not math.isfinite(value):  # NaN or infinity: no text is the value
        raise TransformError(f"{name}: not a finite number: {value!r}")
    return str(value)


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
        parsed = _from_epoch(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TransformError(f"not an ISO-8601 date or time: {value[:40]!r}") from None
    else:
        raise TransformError(f"not a date or time: {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):  # OSError: beyond the C library's range
        raise TransformError(
            f"not a time in epoch seconds (years 1-9999; milliseconds?): {seconds!r}"
        ) from None


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

    def truncate(value: Any) -> str:
        text = _text(value, "truncate")
        return text if len(text) <= limit else cut(text, limit)

    return truncate


_GRAPHEME = regex.compile(r"\X")
"""One user-perceived character (an extended grapheme cluster, Unicode UAX #29)."""


def cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` code points at a user-perceived character boundary:
    an accent, emoji modifier, ZWJ sequence, flag or Hangul syllable is kept whole or
    dropped whole (never `e` for `é`, half a flag or a family missing a member).

    Raises:
        TransformError: when the first character alone is longer than `limit`.
    """
    if len(text) <= limit:
        return text
    end = 0
    for match in _GRAPHEME.finditer(text, 0, limit + 1):
        if match.end() > limit:
            break
        end = match.end()
    if end == 0:
        raise TransformError(
            f"truncate:{limit}: the first character is longer than {limit} code points"
        )
    return text[:end]


def _minor(arg: str) -> Transform:
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


def phone_region(text: str) -> str | None:
    """`text` as an ISO 3166 region phonenumbers knows (any case, spaces trimmed), or None.

    An unknown region (`UK`, `USA`) would make every number written without +country
    silently invalid ("Missing or invalid default region"): callers refuse it in config.
    """
    code = text.strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


def default_region(text: str) -> str:
    """A `phone_default_region` setting as its ISO code, or a ValueError saying why not."""
    code = phone_region(text)
    if code is None:
        hint = " (the United Kingdom is GB)" if text.strip().upper() == "UK" else ""
        raise ValueError(
            f"{text!r} is not an ISO 3166 region phonenumbers knows, e.g. US, GB, DE{hint}"
        )
    return code


def _e164(arg: str) -> Transform:
    region = phone_region(arg) if arg.strip() else None
    if arg.strip() and region is None:
        raise ValueError(f"e164 needs a two-letter region such as e164:US, got {arg!r}")
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
