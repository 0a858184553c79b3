"""The blank tests of `mapping.blank`, as inline expressions on the local `v`."""

from __future__ import annotations

import math
from typing import Any

from mapping.blank import BLANK_CHARS, BLANK_STARTS, is_blank

CELLS: dict[str, Any] = {
    "_is_blank": is_blank,
    "_isfinite": math.isfinite,
    "_blank_chars": BLANK_CHARS,
    "_blank_starts": BLANK_STARTS,
}
"""The names the expressions below refer to, and what they are."""

TEXT_SHOWS = (
    "((v and not v.isspace()) if v.isascii() else "
    "(v[0] not in _blank_starts or v.strip(_blank_chars)))"
)
"""True when the text `v` is not blank, as `is_blank_text` decides: ASCII text (the
common case; `isascii` reads a flag) can only be blank with white space, which
`isspace` sees at its first other character; other text is stripped of white space and
invisible characters only when its first character is one of them."""

TEXT_BLANK = (
    "((not v or v.isspace()) if v.isascii() else "
    "(v[0] in _blank_starts and not v.strip(_blank_chars)))"
)
"""`is_blank_text(v)`, inline: the negation of `TEXT_SHOWS`."""

FOUND = (
    f"{TEXT_SHOWS} if type(v := {{expr}}) is str else "
    "(v is not None and (type(v) is int or "
    "(_isfinite(v) if type(v) is float else not _is_blank(v))))"
)
"""Binds `v`; true when it is not blank, as `is_blank` decides, with the common types
tested inline (NaN and infinity are blank floats)."""

BLANK = (
    f"v is None or ({TEXT_BLANK} if type(v) is str else "
    "(type(v) is not int and (not _isfinite(v) if type(v) is float else _is_blank(v))))"
)
"""`is_blank(v)`, inline: the negation of `FOUND` (without the binding)."""
