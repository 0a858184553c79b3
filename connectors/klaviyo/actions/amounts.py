"""Money as senders write it: `19.99`, `"19.99"`, `"$19.99"`, `"USD 1,299.00"`.

Klaviyo's `value` is a JSON number and `value_currency` an ISO 4217 code. Text is read
only in one convention: a currency sign or code around a plain number, commas only
as thousands separators in groups of three (`1,299` and `1,299.00` are 1299). A decimal
comma (`"1.299,00"`, `"19,99"`) is refused, not guessed, as are NaN and infinity (JSON
would carry them as null).
"""

from __future__ import annotations

import math
import re
from typing import Any

from mapping.transforms.numeric import GROUPED_DIGITS

_SIGNS = "$€£¥₹"
_AMOUNT = re.compile(
    rf"""^(?P<sign>[+-]?)\s*
    (?:[A-Z]{{3}}\s*|[{_SIGNS}]\s*)?          # a leading code or sign: USD 5, $5
    (?P<minus>-?)\s*                         # $-5
    (?P<number>{GROUPED_DIGITS}(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)
    \s*(?:[A-Z]{{3}}|[{_SIGNS}])?$           # a trailing code or sign: 5 EUR, 5€
    """,
    re.VERBOSE | re.IGNORECASE,
)
_CODE = re.compile(r"^[A-Z]{3}$")


def number(value: Any) -> float | int | None:
    """A finite JSON number from a number or money text; None when blank.

    Raises:
        ValueError: for text that is no amount, or a NaN or infinite number.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _finite(value)
    text = str(value).strip()
    try:
        return _finite(float(text))  # plain numbers, as Python reads them ("1e3" too)
    except ValueError:
        pass
    found = _AMOUNT.match(text)
    if found is None or (found["sign"] and found["minus"]):
        raise ValueError(text)
    amount = float(found["number"].replace(",", ""))
    return -amount if "-" in (found["sign"], found["minus"]) else amount


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(str(value))
    return value


def currency_code(value: Any) -> tuple[str | None, str | None]:
    """(ISO 4217 code in upper case, None), or (None, why it was dropped); (None, None) if blank."""
    if value is None or isinstance(value, dict | list):
        return None, None
    text = str(value).strip()
    if not text:
        return None, None
    if _CODE.match(text.upper()):
        return text.upper(), None
    return None, f"value_currency dropped: {text!r} is not an ISO 4217 code"
