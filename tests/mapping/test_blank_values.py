"""Values that are no values: invisible-only text, NaN and infinity.

Both resolvers (the generated one, `resolve`, and the plain one, `resolve_planned`) and
the spec-by-spec `resolve_field` must treat them as blank: the next path, then the
fallback, applies; a required field without a fallback is a rejected row.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import orjson
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.blank import BLANK_CHARS, INVISIBLE, is_blank
from mapping.fields import FieldSpec, Resolved, resolve, resolve_field, resolve_planned
from mapping.identity import values as identity_values
from mapping.transforms import TransformError, apply_transforms

FIRST_NAME = {
    "first_name": FieldSpec(
        path=["traits.first_name", "context.traits.first_name"], fallback="there"
    ),
}

SHOWS_NOTHING = [
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufeff",  # byte-order mark
    "\u00ad",  # soft hyphen
    "\u00a0",  # no-break space
    "\u3000",  # ideographic space
    "\u200e\u200f",  # direction marks
    " \u200b\t\u00a0\ufeff\n",
    "\u200b" * 50,
]


def every_resolver(specs: dict[str, FieldSpec], data: dict[str, Any]) -> Resolved:
    """The generated resolver's result, checked against the plain one and a `Mapping`."""
    got = resolve(specs, data)
    assert got == resolve_planned(specs, data)
    assert got == resolve(specs, OrderedDict(data))  # not a dict: the plain path
    return got


# Invisible-only text ---------------------------------------------------------------------


@pytest.mark.parametrize("text", SHOWS_NOTHING)
def test_text_that_shows_nothing_takes_the_fallback(text: str) -> None:
    got = every_resolver(FIRST_NAME, {"traits": {"first_name": text}})
    assert got.values == {"first_name": "there"}  # was "\u200b": "Hi \u200b,"
    assert got.fallbacks_used == ["first_name"]
    assert resolve_field(FIRST_NAME["first_name"], {"traits": {"first_name": text}}) == (
        "there",
        True,
    )


@pytest.mark.parametrize("text", SHOWS_NOTHING)
def test_text_that_shows_nothing_lets_the_next_path_speak(text: str) -> None:
    data = {"traits": {"first_name": text}, "context": {"traits": {"first_name": "Ann"}}}
    got = every_resolver(FIRST_NAME, data)
    assert got.values == {"first_name": "Ann"} and got.fallbacks_used == []


@pytest.mark.parametrize("text", SHOWS_NOTHING)
def test_a_required_field_showing_nothing_is_a_rejected_row(text: str) -> None:
    specs = {"first_name": FieldSpec(path=["traits.first_name"], required=True)}
    got = every_resolver(specs, {"traits": {"first_name": text}})
    assert got.values == {} and got.missing == ["first_name"]
    (row,) = got.rejects("m-1", prefix="track_event.")
    assert (row.field, row.reason) == ("track_event.first_name", "no value and no fallback")


@pytest.mark.parametrize(
    "text",
    ["\u200bAnn", "Ann\u200d", "\u00a0Ann\u3000", "\ufeffZoë", "Jean\u00ad-Luc", "👨\u200d👩"],
)
def test_real_values_with_invisible_characters_are_sent_as_they_are(text: str) -> None:
    got = every_resolver(FIRST_NAME, {"traits": {"first_name": text}})
    assert got.values["first_name"] is text  # not trimmed, not rebuilt
    assert got.fallbacks_used == []


@pytest.mark.parametrize(
    "names",
    [["truncate:1"], ["trim", "truncate:1"], ["to_string", "truncate:1"], ["lower", "truncate:1"]],
)
def test_a_transform_leaving_only_invisible_text_falls_back(names: list[str]) -> None:
    # "\u200b" is a user-perceived character of its own: truncate:1 keeps just it.
    specs = {"f": FieldSpec(path=["x"], transform=names, fallback="fb")}
    assert every_resolver(specs, {"x": "\u200bAnn"}).values == {"f": "fb"}


def test_a_fallback_or_constant_that_shows_nothing_is_none() -> None:
    specs = {
        "a": FieldSpec(path=["x"], fallback="\u200b", required=True),
        "b": FieldSpec(value="\ufeff", required=True),
    }
    got = every_resolver(specs, {})
    assert got.values == {} and got.missing == ["a", "b"]


def test_blank_text_is_what_shows_nothing() -> None:
    for text in ["", " ", "\t\n", *SHOWS_NOTHING]:
        assert is_blank(text), repr(text)
    for text in ["0", "-", ".", "a", "\u200ba", "a\u200b", "山", "é", "\u3000x"]:
        assert not is_blank(text), repr(text)


class Text(str):
    """A `str` that is not exactly `str`."""


def test_text_subclasses_follow_the_same_rule() -> None:
    assert is_blank(Text("\u200b\u00a0")) and not is_blank(Text("\u200bx"))
    specs = {"f": FieldSpec(path=["x"], fallback="fb")}
    assert every_resolver(specs, {"x": Text("\u2060")}).values == {"f": "fb"}


def test_the_invisible_characters_are_those_identity_trims() -> None:
    # One list for "prints as nothing": a field and an identifier agree on it.
    assert INVISIBLE == identity_values.INVISIBLE
    assert set(BLANK_CHARS) == set(identity_values.BLANK)


texts = st.text(alphabet=st.sampled_from([*BLANK_CHARS, "a", "é", "山", "0", " "]), max_size=6)


@settings(max_examples=400, deadline=None)
@given(st.lists(texts, min_size=1, max_size=3), st.sampled_from([[], ["trim"], ["upper"]]))
def test_resolvers_agree_on_any_mix_of_visible_and_invisible_text(
    candidates: list[str], names: list[str]
) -> None:
    specs = {"f": FieldSpec(path=[f"p{i}" for i in range(3)], transform=names, fallback="fb")}
    data = {f"p{i}": text for i, text in enumerate(candidates)}
    got = every_resolver(specs, data)
    shown = [text for text in candidates if text.strip(BLANK_CHARS)]
    if not shown:
        assert got.values == {"f": "fb"}
    elif not names:
        assert got.values == {"f": shown[0]}


# Look-alike blanks -----------------------------------------------------------------------

LOOK_ALIKES = [
    "\u3164",  # Hangul filler: the usual "invisible name"
    "\uffa0",  # halfwidth Hangul filler
    "\u115f",  # Hangul choseong filler
    "\u1160",  # Hangul jungseong filler
    "\u2800",  # Braille pattern blank
    "\u3164\u3164\u3164",
    "\u115f\u1160",  # an empty Hangul syllable
    " \u2800\u00a0\u3164 ",
    "\u034f",  # combining grapheme joiner
    "\u061c",  # Arabic letter mark
    "\u17b5",  # Khmer inherent vowel
    "\u180b",  # Mongolian free variation selector
    "\u206a",  # a deprecated format character
    "\ufe0f",  # variation selector 16 (emoji presentation)
    "\U000e0041\U000e006e\U000e006e",  # tag characters spelling "Ann", unseen
    "\U000e0100",  # a variation selector from the supplement
    "\U0001d173",  # musical symbol begin beam
]
"""Text that shows nothing but is made of letters, symbols or marks, not white space or
zero-width spaces: before, it went out as a first name ("Hi ㅤ,")."""


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alike_blanks_take_the_fallback_in_both_resolvers(text: str) -> None:
    data = {"traits": {"first_name": text}}
    generated = resolve(FIRST_NAME, data)
    plain = resolve_planned(FIRST_NAME, data)
    fallback = ({"first_name": "there"}, ["first_name"])
    assert (generated.values, generated.fallbacks_used) == fallback, "generated resolver"
    assert (plain.values, plain.fallbacks_used) == fallback, "plain resolver"
    assert resolve_field(FIRST_NAME["first_name"], data) == ("there", True)
    assert is_blank(text)


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alike_blanks_let_the_next_path_speak_or_reject_a_required_field(
    text: str,
) -> None:
    data = {"traits": {"first_name": text}, "context": {"traits": {"first_name": "Ann"}}}
    assert every_resolver(FIRST_NAME, data).values == {"first_name": "Ann"}
    specs = {"first_name": FieldSpec(path=["traits.first_name"], required=True)}
    got = every_resolver(specs, {"traits": {"first_name": text}})
    assert got.values == {} and got.missing == ["first_name"]


@pytest.mark.parametrize(
    "names",
    # truncate:1: the generated text fast path; to_string first: the chain, then its test.
    [["truncate:1"], ["trim", "truncate:1"], ["to_string", "truncate:1"]],
)
@pytest.mark.parametrize("filler", ["\u3164", "\uffa0", "\u2800"])
def test_a_transform_leaving_only_a_look_alike_blank_falls_back(
    names: list[str], filler: str
) -> None:
    specs = {"f": FieldSpec(path=["x"], transform=names, fallback="fb")}
    data = {"x": filler + "Ann"}
    assert resolve(specs, data).values == {"f": "fb"}, "generated resolver"
    assert resolve_planned(specs, data).values == {"f": "fb"}, "plain resolver"


@pytest.mark.parametrize(
    "text", ["\u3164Ann", "Ann\u2800", "\u1100\u1160", "❤\ufe0f", "🏴\U000e0067"]
)
def test_text_with_a_look_alike_blank_in_it_is_sent_as_it_is(text: str) -> None:
    got = every_resolver(FIRST_NAME, {"traits": {"first_name": text}})
    assert got.values["first_name"] is text and got.fallbacks_used == []


def test_every_default_ignorable_character_shows_nothing() -> None:
    # Unicode's Default_Ignorable_Code_Point: drawn as nothing when not supported.
    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    for code in range(0x110000):
        char = chr(code)
        if ignorable.match(char) and unicodedata.category(char) != "Cn":
            assert char in INVISIBLE and is_blank(char), hex(code)


# NaN and infinity ------------------------------------------------------------------------

NOT_FINITE = [float("nan"), float("inf"), float("-inf")]
VALUE = {"value": FieldSpec(path=["properties.revenue", "properties.total"])}


@pytest.mark.parametrize("number", NOT_FINITE)
def test_nan_and_infinity_are_no_value_so_the_next_path_speaks(number: float) -> None:
    data = {"properties": {"revenue": number, "total": 12.5}}
    assert every_resolver(VALUE, data).values == {"value": 12.5}


@pytest.mark.parametrize("number", NOT_FINITE)
def test_nan_and_infinity_are_never_sent(number: float) -> None:
    data = {"properties": {"revenue": number}}
    got = every_resolver(VALUE, data)
    assert got.values == {} and got.ok  # was {"value": nan}: JSON null at send time
    assert b"null" not in orjson.dumps(got.values)


@pytest.mark.parametrize("number", NOT_FINITE)
def test_nan_takes_the_fallback_or_rejects_a_required_field(number: float) -> None:
    specs = {
        "value": FieldSpec(path=["x"], fallback=0),
        "score": FieldSpec(path=["x"], required=True),
    }
    got = every_resolver(specs, {"x": number})
    assert got.values == {"value": 0} and got.fallbacks_used == ["value"]
    assert got.missing == ["score"]
    (row,) = got.rejects("m-1")
    assert (row.field, row.reason) == ("score", "no value and no fallback")


@pytest.mark.parametrize(
    "names",
    [
        ["to_number"],
        ["to_string"],
        ["trim"],
        ["truncate:10"],
        ["iso8601"],
        ["date:%Y-%m-%d"],
        ["minor_units"],
        ["minor_units:JPY"],
    ],
)
@pytest.mark.parametrize("number", NOT_FINITE)
def test_nan_and_infinity_are_blank_before_any_transform(names: list[str], number: float) -> None:
    specs = {"f": FieldSpec(path=["x"], transform=names, fallback="fb")}
    got = every_resolver(specs, {"x": number})
    assert got.values == {"f": "fb"} and not got.invalid
    with pytest.raises(TransformError):  # the transforms themselves still refuse them
        apply_transforms(number, names)


class Real(float):
    """A `float` that is not exactly `float` (as numpy's float64 is)."""


@pytest.mark.parametrize("number", [Real("nan"), Decimal("NaN"), Decimal("-Infinity")])
def test_other_kinds_of_nan_are_blank_too(number: Any) -> None:
    assert is_blank(number)
    assert every_resolver(VALUE, {"properties": {"revenue": number, "total": 1}}).values == {
        "value": 1
    }


def test_finite_numbers_and_zero_stay_values() -> None:
    for number in [0, 0.0, -0.0, 1e308, -1e-308, Real(2.5), Decimal("1.5"), False]:
        assert not is_blank(number)
        assert every_resolver(VALUE, {"properties": {"revenue": number}}).values == {
            "value": number
        }


def test_a_nan_fallback_is_no_fallback() -> None:
    specs = {"f": FieldSpec(path=["x"], fallback=float("nan"), required=True)}
    got = every_resolver(specs, {})
    assert got.values == {} and got.missing == ["f"]


def test_trim_lower_and_upper_never_make_visible_text_blank() -> None:
    # The generated resolver relies on it: it skips the blank test after these.
    for code in range(0x110000):
        char = chr(code)
        if is_blank(char):
            continue
        for change in (str.strip, str.lower, str.upper):
            assert not is_blank(change(char)), (hex(code), change.__name__)
