"""What counts as no value: the rule every field, fallback and trait check shares.

Blank: None; text with nothing visible in it (empty, white space, invisible characters);
NaN and infinity; an empty list, tuple or object. 0, False and text that merely
contains invisible characters (`"\\u200bAnn"`) are values, and are sent as they are.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

INVISIBLE = (
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
"""Format characters that print as nothing: soft hyphen, zero-width space and joiners,
word joiner, direction marks, the byte-order mark. `str.strip()` and `str.isspace()`
do not see them, so `"\\u200b"` would go out as a first name ("Hi \\u200b,"). Identity
trims them from identifiers too (`mapping.identity.values.BLANK`)."""

BLANK_CHARS = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + INVISIBLE
"""Characters that show nothing: Unicode white space (tab, NBSP, ideographic space, …)
and `INVISIBLE`. Text made only of them is blank."""

BLANK_STARTS = frozenset(BLANK_CHARS)
"""`BLANK_CHARS` as a set, to test a first character: text that starts with anything
else is not blank, whatever follows."""

_isfinite = math.isfinite


def is_blank_text(text: str) -> bool:
    """True when `text` shows nothing: empty, or only white space and invisible characters.

    ASCII text (its kind is stored on the string, so the test costs nothing) can only
    hold ASCII white space, which `isspace` sees at once; other text is looked at further
    only when its first character is one that shows nothing.
    """
    if text.isascii():
        return not text or text.isspace()
    return text[0] in BLANK_STARTS and not text.strip(BLANK_CHARS)


def is_blank(value: Any) -> bool:
    """True for None, blank text, NaN, infinity and empty containers; 0 and False are not.

    NaN and infinity are no amounts or measures (JSON cannot carry them: they would go
    out as null), so a field reading one takes its next path or its fallback.
    """
    if value is None:
        return True
    kind = type(value)
    if kind is str:
        return is_blank_text(value)
    if kind is int or kind is bool:
        return False
    if kind is float:
        return not _isfinite(value)
    if isinstance(value, str):
        return is_blank_text(value)
    if isinstance(value, float):
        return not _isfinite(value)
    if isinstance(value, Decimal):
        return not value.is_finite()
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False
