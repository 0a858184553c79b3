"""Transforms over the odd values real Segment events carry.

The rule: a value a transform cannot turn into what the ESP should get makes the field
invalid (a rejected row naming the field and the reason); it never raises out of
`resolve` and never goes out silently wrong. Each case runs through the generated
resolver (`resolve`), the plain one (`resolve_planned`) and the bare chain.
"""

from __future__ import annotations

import decimal
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mapping.fields import FieldSpec, Resolved, resolve, resolve_planned
from mapping.transforms import NAMES, TransformError, apply_transforms
from mapping.transforms.numeric import minor_units
from mapping.transforms.text import cut


def both(transforms: list[str], value: Any) -> Resolved:
    """Resolve one field through the generated and the plain resolver; they must agree."""
    specs = {"f": FieldSpec(path=["x"], transform=transforms, fallback="fb")}
    got = resolve(specs, {"x": value})
    assert got == resolve_planned(specs, {"x": value})
    return got


def invalid(transforms: list[str], value: Any, reason: str) -> None:
    got = both(transforms, value)
    assert got.values == {}, got.values  # not sent, and not replaced by the fallback
    assert reason in got.invalid["f"]
    with pytest.raises(TransformError, match=reason):
        apply_transforms(value, transforms)


# minor_units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["1e30", 10**30, 1e300, "1e999999999", "123456789012345678901234567.89"]
)
def test_amounts_too_large_for_minor_units_are_invalid_not_a_crash(value: Any) -> None:
    # Was: decimal.InvalidOperation / decimal.Overflow out of `resolve`, stopping the run.
    invalid(["minor_units"], value, "too large for 64-bit minor units")


def test_minor_units_stay_within_64_bits() -> None:
    # 26 digits used to pass (and make the senders' JSON encoder raise at send time).
    invalid(["minor_units"], "12345678901234567890123456.78", "too large")
    assert both(["minor_units"], "9999999999999999.99").values == {"f": 999999999999999999}
    assert both(["minor_units"], "-9999999999999999.99").values == {"f": -999999999999999999}
    assert both(["minor_units"], "0E+999").values == {"f": 0}  # zero, however written
    assert both(["minor_units:18"], "9.2").values == {"f": 9_200_000_000_000_000_000}
    invalid(["minor_units:18"], "18446744073709551616e-18", "too large")  # 2**64 wei
    invalid(["minor_units"], "-92233720368547758.09", "too large")  # -(2**63) - 1 cents


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.12500000000000000000000000001", 13),  # was 12: rounded to 28 digits first
        (0.1 + 0.2, 30),
        (19.995, 2000),
        (-19.995, -2000),
        ("19.985", 1998),  # half-even, as documented
        (1.005, 100),  # the float's shortest text is "1.005"
        ("-0.004", 0),
        ("19.99", 1999),
    ],
)
def test_minor_units_round_the_amount_as_written_once(value: Any, expected: int) -> None:
    assert both(["minor_units"], value).values == {"f": expected}


def test_minor_units_ignore_the_threads_decimal_context() -> None:
    with decimal.localcontext() as context:
        context.prec = 5
        context.rounding = decimal.ROUND_DOWN
        assert minor_units("123456.78") == 12345678
        assert minor_units("0.125") == 12


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=40, max_value=10**14),
    st.sampled_from([0, 2, 3]),
)
def test_minor_units_are_the_exact_half_even_rounding(amount: Decimal, digits: int) -> None:
    exact = Fraction(amount) * 10**digits
    assert minor_units(str(amount), digits) == round(exact)  # `round` is half-even


def test_minor_units_digits_are_bounded_in_config() -> None:
    with pytest.raises(ValidationError, match="at most 18 digits"):
        FieldSpec(path=["x"], transform=["minor_units:99"])


# to_number and to_string ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("NaN", "not a finite number"),  # as text; a NaN float is blank (see below)
        ("-inf", "not a finite number"),
        ("1e400", "outside 64 bits"),  # was a 401-digit int
        ("1e999999999", "outside 64 bits"),  # was a billion-digit int (hangs)
        (2**70, "outside 64 bits"),  # was sent, then the JSON encoder raised
        ("1" + "0" * 400 + ".5", "too large"),  # was float("inf")
        ("1e-400", "too small"),  # was 0.0
    ],
)
def test_numbers_json_cannot_carry_are_invalid(value: Any, reason: str) -> None:
    invalid(["to_number"], value, reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("19.99", 19.99), (" 12 ", 12), (2**63, 2**63), (-(2**63), -(2**63)), (0, 0), (0.0, 0.0)],
)
def test_to_number_keeps_ordinary_numbers(value: Any, expected: Any) -> None:
    got = both(["to_number"], value).values["f"]
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name", ["to_string", "trim", "lower", "upper", "truncate:10"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # An id sent as a JSON number arrives as this float; it printed 12345678901234567168.
        (1.2345678901234568e19, "too large to be exact"),
    ],
)
def test_text_of_numbers_that_are_not_what_was_sent_is_invalid(
    name: str, value: float, reason: str
) -> None:
    invalid([name], value, reason)


def test_text_of_ordinary_numbers() -> None:
    assert both(["to_string"], 4155550100.0).values == {"f": "4155550100"}
    assert both(["to_string"], 2**70).values == {"f": str(2**70)}  # an int is exact
    assert both(["to_string"], 0.1 + 0.2).values == {"f": "0.30000000000000004"}
    assert both(["e164:US"], 4155550100).values == {"f": "+14155550100"}


# truncate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "text", "expected"),
    [
        (5, "abcde\u0301x", "abcd"),  # was "abcde": é lost its accent
        (3, "ab👍🏽x", "ab"),  # was "ab👍": the skin tone dropped
        (4, "ab👨\u200d👩\u200d👧", "ab"),  # was "ab👨\u200d": a dangling joiner
        (3, "🇺🇸🇫🇷", "🇺🇸"),  # was "🇺🇸" plus half of the French flag
        (5, "🇺🇸🇫🇷", "🇺🇸🇫🇷"),
        (2, "a\r\nb", "a"),
        (2, "a\n\u0301", "a\n"),  # a mark never joins a control character
        (3, "\u1100\u1161\u11a8x", "\u1100\u1161\u11a8"),  # conjoining Hangul
        (6, "Zoë 👍", "Zoë 👍"),
        (3, "abcdef", "abc"),
        (4, "ab\u0301\u0301cd", "ab\u0301\u0301"),
    ],
)
def test_truncate_never_splits_a_character(limit: int, text: str, expected: str) -> None:
    assert both([f"truncate:{limit}"], text).values == {"f": expected}
    assert both(["trim", f"truncate:{limit}", "lower"], f"  {text}").values == {
        "f": expected.lower()
    }


def test_a_first_character_longer_than_the_limit_is_invalid() -> None:
    invalid(["truncate:2"], "\u1100\u1161\u11a8x", "first character is longer than 2")
    invalid(["truncate:1"], "👍🏽", "first character is longer than 1")


GRAPHEME_ALPHABET = [
    "a",
    "e",
    " ",
    "\r",
    "\n",
    "\u0301",  # combining acute (Mn)
    "\u20dd",  # enclosing circle (Me)
    "\u0903",  # Devanagari visarga (Mc, SpacingMark)
    "\u0e33",  # Thai sara am (Lo, SpacingMark)
    "\ufe0f",  # variation selector 16
    "\u200d",  # zero-width joiner
    "\u200c",  # zero-width non-joiner
    "👨",
    "👩",
    "👍",
    "🏴",
    "\U0001f3fd",  # skin tone
    "\U0001f1fa",  # regional indicators U, S
    "\U0001f1f8",
    "\U000e0067",  # tag g, cancel tag
    "\U000e007f",
    "\u1100",  # Hangul L, V, T, LV, LVT
    "\u1161",
    "\u11a8",
    "\uac00",
    "\uac01",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(GRAPHEME_ALPHABET), max_size=14).map("".join), st.integers(1, 8))
def test_truncate_cuts_only_at_unicode_grapheme_boundaries(text: str, limit: int) -> None:
    import regex  # UAX #29 extended grapheme clusters, as `cut` uses them

    boundaries, at = {0}, 0
    for cluster in regex.findall(r"\X", text):
        at += len(cluster)
        boundaries.add(at)
    longest = max(b for b in boundaries if b <= limit)
    try:
        got = apply_transforms(text, [f"truncate:{limit}"])
    except TransformError:
        assert len(text) > limit and longest == 0  # the first character alone is too long
        return
    assert got == text[:longest]  # the longest prefix that ends between two characters
    assert both([f"truncate:{limit}"], text) == resolve_planned(
        {"f": FieldSpec(path=["x"], transform=[f"truncate:{limit}"], fallback="fb")}, {"x": text}
    )


def test_cut_is_plain_slicing_for_latin_text() -> None:
    assert cut("Ann Example", 3) == "Ann"
    assert cut("é" * 10, 4) == "éééé"  # precomposed: one code point each


# dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iso8601", "date:%Y-%m-%d", "date:%d/%m/%Y"])
@pytest.mark.parametrize(
    "value",
    [
        67768036191676800,  # was OSError (EOVERFLOW) out of `resolve`, stopping the run
        1733300000000,  # epoch milliseconds: year 56896
        -1e20,
    ],
)
def test_epoch_numbers_out_of_range_are_invalid(name: str, value: float) -> None:
    invalid([name], value, "not a time in epoch seconds")


def test_epoch_seconds_and_zoned_times() -> None:
    assert both(["iso8601"], 1733300000.5).values == {"f": "2024-12-04T08:13:20.500Z"}
    assert both(["date:%Y-%m-%d"], "2026-01-05T01:00:00+05:30").values == {"f": "2026-01-04"}
    assert both(["date:%Y-%m-%d"], "2026-01-05T23:00:00-05:00").values == {"f": "2026-01-06"}


# e164 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["e164:USA", "e164:XX", "e164:1"])
def test_an_unknown_phone_region_is_a_config_error(name: str) -> None:
    # Was accepted; then every local number failed "Missing or invalid default region".
    with pytest.raises(ValidationError, match="two-letter region"):
        FieldSpec(path=["x"], transform=[name])


def test_known_phone_regions_compile() -> None:
    assert both(["e164:gb"], "020 7946 0958").values == {"f": "+442079460958"}


# Every transform, any JSON value ----------------------------------------------------------

TRANSFORMS = [name for name in NAMES if name not in ("date", "truncate", "minor_units", "e164")]
TRANSFORMS += ["date:%Y-%m-%d", "date:%d/%m/%Y %H:%M", "truncate:3", "minor_units"]
TRANSFORMS += ["minor_units:JPY", "minor_units:18", "e164:US", "e164"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.sampled_from([1e300, -1e-300, 2.0**63, 1733300000000, 1733300000.5, -0.0]),
    st.text(max_size=12),
    st.sampled_from(["19.99", " 1e30 ", "1e999999999", "NaN", "-inf", "2026-01-05T01:00:00+05:30"]),
    st.sampled_from(
        ["👍🏽", "e\u0301", "\u200b", "\uff10\uff11\uff12", "4155550100", "+1 (415) 555-0100"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(TRANSFORMS), min_size=1, max_size=2), json_values)
def test_no_value_makes_a_transform_raise_or_send_nonsense(names: list[str], value: Any) -> None:
    got = both(names, value)  # never raises
    for sent in got.values.values():
        if isinstance(sent, float):
            assert math.isfinite(sent)
        elif isinstance(sent, int) and not isinstance(sent, bool):
            assert -(2**63) <= sent < 2**64
        elif isinstance(sent, str) and isinstance(value, float):
            assert sent.lower() not in ("nan", "inf", "-inf")
