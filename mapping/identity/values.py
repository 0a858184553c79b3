"""How one raw value becomes identifier text, or is refused: the rules for messy input.

Segment data carries ids written by every kind of client: numbers for strings,
placeholders (`(null)`, `<nil>`, `#N/A`, `-`, the nil UUID), invisible characters pasted
from web pages, `mailto:` links, domains in Unicode. Each rule here is a plain
function of the text, so `Normalizer` applies them once per distinct value (it
memoizes the result): none of this runs per message.
"""

from __future__ import annotations

import math
import re

from mapping.blank import BLANK_CHARS, INVISIBLE

MAX_VALUE_LENGTH = 500
"""Longest identifier value (the store's `value` column holds 512 characters). A longer
value (a serialized object, a token) is not an identifier: it is ignored, never cut,
since two long values cut to the same prefix would merge two people."""

BLANK = BLANK_CHARS
"""What is trimmed from both ends of every value: Unicode white space and the characters
that print as nothing (`mapping.blank.INVISIBLE`: zero-width spaces, direction marks, the
byte-order mark, the Hangul fillers, the Braille blank), which, pasted along with a value,
make `null` look like an id and one address look like two, or make an id of nothing
that merges everyone who sent it. The same characters a field value made only of counts
as blank."""

WRAPPERS = "\"'`()<>[]{}#"
"""Marks around a placeholder (`(null)`, `<nil>`, `#N/A`, `"null"`, `[object Object]`):
a value is junk when it is a junk value once they are taken off its ends."""

_DROP_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE))
_MEANINGFUL = re.compile(r"[^\W0_]")  # a letter or a digit other than 0
_ZERO_FRACTION = re.compile(r"(-?[0-9]+)\.0+")

_IDNA_DEVIATIONS = frozenset("ßς")
"""Letters IDNA 2003 (Python's `idna` codec) maps to others (ß → ss) while IDNA 2008
keeps them: `straße.de` and `strasse.de` are different domains, so such an address is
not turned into ASCII (and, not being valid ASCII syntax, is ignored)."""

_MAX_INT = 10**MAX_VALUE_LENGTH


def as_text(raw: object) -> str | None:
    """A raw identifier as text: strings as they are, whole numbers without a fraction.

    `123`, `123.0` and `"123"` are one id (Segment's libraries send numeric ids as
    strings). Booleans, NaN, infinities, integers of more than `MAX_VALUE_LENGTH`
    digits, lists and objects are no identifier.
    """
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return str(raw) if -_MAX_INT < raw < _MAX_INT else None
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None
        return str(int(raw)) if raw.is_integer() else str(raw)
    return None


def integral(value: str) -> str:
    """An id written as a number with a zero fraction, as the integer: `123.0` is `123`.

    A float in JSON (`"userId": 123.0`) or an integer column with gaps read by pandas
    (`"123.0"`) names the same person as `123`; Segment's JavaScript libraries print
    both as `123`. Any other text is returned as it is.
    """
    if "." not in value:
        return value
    match = _ZERO_FRACTION.fullmatch(value)
    return value if match is None else match[1]


def junk_key(value: str) -> str:
    """What a value is compared with the junk values as: lower-cased, wrappers off."""
    return value.strip(BLANK).lower().strip(WRAPPERS)


def meaningless(value: str) -> bool:
    """True when no letter or digit but 0 is in it: `-`, `...`, `0000`, the nil UUID.

    Such a value names nobody; the nil UUID is what iOS sends for a withheld device id.
    """
    first = value[:1]
    if first != "0" and first.isalnum():  # most ids: decided by the first character
        return False
    return _MEANINGFUL.search(value) is None


def storable(value: str) -> bool:
    """True when the store can hold the text as it is.

    PostgreSQL text cannot hold NUL, and a lone surrogate (from `\\ud800` in JSON read
    leniently) is not UTF-8: either would fail the batch's write, not just this value.
    """
    if value.isascii():
        return "\x00" not in value
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def email_text(value: str) -> str | None:
    """An address as it is compared: lower-cased and in ASCII, or None.

    Takes off a `mailto:` (an href copied whole), full stops at the end (`ann@x.com.`:
    the end of a sentence, or the DNS root) and invisible characters anywhere; writes a
    Unicode domain in its ASCII (punycode) form, as mail servers and ESPs take it:
    `ann@bücher.de` is `ann@xn--bcher-kva.de`. A Unicode local part stays invalid.
    """
    value = value.lower()
    if value.startswith("mailto:"):
        value = value[7:].strip(BLANK)
    if not value.isascii():
        ascii_value = _ascii_domain(value.translate(_DROP_INVISIBLE))
        if ascii_value is None:
            return None
        value = ascii_value
    return value.rstrip(".")


def _ascii_domain(value: str) -> str | None:
    if value.isascii():
        return value
    local, at, domain = value.rpartition("@")
    if not at or not local.isascii() or not _IDNA_DEVIATIONS.isdisjoint(domain):
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii').lower()}"
    except UnicodeError:  # an empty or over-long label, a character IDNA forbids
        return None
