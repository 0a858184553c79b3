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

This module names and compiles transforms; they are written by kind in `text`,
`numeric`, `times` and `phones`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from mapping.transforms.base import Transform, TransformError
from mapping.transforms.numeric import minor_units_of, to_number
from mapping.transforms.phones import e164_of
from mapping.transforms.text import subscriber_hash, text_of, to_string, truncate_of
from mapping.transforms.times import date_of, iso8601

__all__ = [
    "NAMES",
    "Transform",
    "TransformError",
    "apply_transforms",
    "compile_chain",
    "compile_transform",
]

_SIMPLE: dict[str, Transform] = {
    "trim": lambda v: text_of(v, "trim").strip(),
    "lower": lambda v: text_of(v, "lower").lower(),
    "upper": lambda v: text_of(v, "upper").upper(),
    "to_string": to_string,
    "to_number": to_number,
    "iso8601": iso8601,
    "subscriber_hash": lambda v: subscriber_hash(text_of(v, "subscriber_hash")),
}
_WITH_ARG: dict[str, Callable[[str], Transform]] = {
    "truncate": truncate_of,
    "minor_units": minor_units_of,
    "date": date_of,
    "e164": e164_of,
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
