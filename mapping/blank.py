"""What counts as no value: the rule every field, fallback and trait check shares.

Blank: None; text with nothing visible in it (empty, white space, invisible characters);
NaN and infinity; an empty list, tuple or object. 0, False and text that merely
contains invisible characters (`"\\u200bAnn"`) are values, and are sent as they are.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def _span(first: int, last: int) -> str:
    return "".join(map(chr, range(first, last + 1)))


INVISIBLE = "".join(
    [
        "\u00ad",  # soft hyphen
        "\u034f",  # combining grapheme joiner
        "\u061c",  # Arabic letter mark
        "\u115f\u1160",  # Hangul choseong and jungseong fillers
        "\u17b4\u17b5",  # Khmer inherent vowels
        _span(0x180B, 0x180F),  # Mongolian variation selectors, vowel separator
        _span(0x200B, 0x200F),  # zero-width space, non-joiner, joiner; direction marks
        _span(0x202A, 0x202E),  # direction embeddings and overrides
        _span(0x2060, 0x2064),  # word joiner, invisible operators
        _span(0x2066, 0x206F),  # direction isolates, deprecated format characters
        "\u2800",  # Braille pattern blank
        "\u3164",  # Hangul filler
        _span(0xFE00, 0xFE0F),  # variation selectors
        "\ufeff",  # byte-order mark
        "\uffa0",  # halfwidth Hangul filler
        _span(0x1BCA0, 0x1BCA3),  # shorthand format controls
        _span(0x1D173, 0x1D17A),  # musical symbol format controls
        "\U000e0001",  # language tag
        _span(0xE0020, 0xE007F),  # tag characters
        _span(0xE0100, 0xE01EF),  # variation selectors supplement
    ]
)
"""Characters that print as nothing and that `str.strip()` and `str.isspace()` do not
see, so `"\\u200b"` would go out as a first name ("Hi \\u200b,"): every assigned default
ignorable code point of Unicode (soft hyphen, zero-width space and joiners, direction
marks, variation selectors, tags, the byte-order mark, the Hangul fillers) and the
Braille blank, an empty cell. The Hangul fillers and the Braille blank are letters and
symbols, not format characters, and are what "invisible name" generators paste.
Identity trims them from identifiers too (`mapping.identity.values.BLANK`)."""

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
