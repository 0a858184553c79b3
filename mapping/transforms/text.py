"""Text transforms: `to_string`, `truncate:N`, `subscriber_hash`, and the text of a value
that `trim`, `lower`, `upper` and `e164` work on."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import regex

from mapping.transforms.base import Transform, TransformError

_EXACT_FLOAT = 2.0**53
"""From here on, consecutive whole floats are more than 1 apart."""


def text_of(value: Any, name: str) -> str:
    """The text a text transform (`name`) works on: a `str` as it is, a number's digits.

    Raises:
        TransformError: for anything else (booleans, lists, objects), and for floats
            `to_string` refuses.
    """
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


def subscriber_hash(email: str) -> str:
    """Mailchimp's subscriber hash: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def truncate_of(arg: str) -> Transform:
    """The transform `truncate:arg`.

    Raises:
        ValueError: when `arg` is not a length of at least 1 (a config error).
    """
    try:
        limit = int(arg)
    except ValueError:
        raise ValueError(f"truncate needs a length, e.g. truncate:100, got {arg!r}") from None
    if limit < 1:
        raise ValueError("truncate needs a length ≥ 1")

    def truncate(value: Any) -> str:
        text = text_of(value, "truncate")
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
