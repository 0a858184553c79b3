"""The generated field resolvers (`mapping.codegen`) against a plain reference.

The reference is `resolve` as it was written before code generation: per field,
`resolve_field`, then the spec's transform chain, then the blank/fallback/required
rules. Random specs meet random messages full of blanks ("", "  ", [], {}, None) and
look-alikes (0, False, "0"), unusual containers (a `Mapping` that is not a dict, lists)
and the text the fast paths special-case (canonical UTC times, amounts).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.blank import is_blank
from mapping.fields import (
    FieldSpec,
    Resolved,
    resolve,
    resolve_field,
    resolve_planned,
    resolver_for,
)
from mapping.kernels import is_canonical_utc, kernel_for
from mapping.transforms import TransformError, apply_transforms


def reference(specs: Mapping[str, FieldSpec], data: Mapping[str, Any]) -> Resolved:
    """`resolve`, the straightforward way."""
    out = Resolved()
    for name, spec in specs.items():
        value, fell_back = resolve_field(spec, data)
        if spec.transform and not fell_back and value is not None:
            try:
                value = spec.transform_value(value)
            except TransformError as exc:
                out.invalid[name] = str(exc)
                continue
            if is_blank(value):
                value, fell_back = (None, False)
                if not is_blank(spec.fallback):
                    value, fell_back = spec.fallback, True
        if fell_back:
            out.fallbacks_used.append(name)
        if value is None:
            if spec.required:
                out.missing.append(name)
            continue
        out.values[name] = value
    return out


def outcome(run: Any, *args: Any) -> tuple[str, Any]:
    """A result or the exception it raised, in a form that compares exactly."""
    try:
        got = run(*args)
    except Exception as exc:  # the same failure is part of the same behaviour
        return ("raised", (type(exc), str(exc)))
    typed = [(name, type(value), value) for name, value in got.values.items()]
    return ("ok", (typed, got.fallbacks_used, got.missing, got.invalid))


# Inputs --------------------------------------------------------------------------------

BLANKS: list[Any] = ["", "  ", " \t\n", [], {}, None]
TIMES = [
    "2026-01-05T00:05:33.118Z",
    "1999-12-31T23:59:59.999Z",
    "0999-01-01T00:00:00.000Z",  # year < 1000: strftime's zone
    "2026-02-30T00:00:00.000Z",  # the canonical shape, not a date
    "2026-01-05T24:00:00.000Z",
    "2026-01-05T00:05:33,118Z",
    "2026-01-05T00:05:33.118z",
    " 2026-01-05T00:05:33.118Z",
    "2026-01-05T00:05:33.118+01:00",
    "2026-01-05T00:05:33.118",
    "2026-01-05",
    "2026-01-05T00:05:33Z",
    "20260105T000533.118Z",
    "2026-W01-1T00:05:33.11Z",
    "yesterday",
]
AMOUNTS: list[Any] = [19.99, 32.0, 0.125, -0.0, 0, 1200, "19.99", " 12 ", "ten", 2**60]
AMOUNTS += [float(2**60), float("nan"), float("inf"), 1e30, True, "1e3", 10**40]
TEXT = ["Ann", " Ann@Example.COM ", "0", "x" * 30, "Ünïcode", "a\u3000", "\u3000"]
TEXT += ["\u200b", "\u00a0\u200d\ufeff", "\u200bAnn", "\u00adé"]  # invisible: blank unless more
TEXT += [
    "abe\u0301\u0301x",
    " 👍🏽👍🏽",
    "🇺🇸🇫🇷",
    "e\u0301\u0301\u0301",
]  # `truncate` cuts around them
SCALARS: list[Any] = [*BLANKS, *TIMES, *AMOUNTS, *TEXT, 0, False, 1.5, -3]

KEYS = ["a", "b", "c", "email", "price", "when", "items"]
PATHS = [
    "a",
    "$.a",
    "a.b",
    "a.b.c",
    "a.b.c.a",
    "b.a",
    "email",
    "a.email",
    "price",
    "a.price",
    "when",
    "items[0]",
    "items[1].a",
    "a.items[0].b",
    "items.a",
    "",
    "$",
    "...",  # not a path: raises when reached
]
TRANSFORMS = [
    "trim",
    "lower",
    "upper",
    "truncate:3",
    " truncate:2",
    "iso8601",
    "date:%Y-%m-%d",
    "date:%d/%m/%Y",
    "minor_units",
    "minor_units:JPY",
    "minor_units:3",
    "to_string",
    "to_number",
    "subscriber_hash",
]


def trees(depth: int = 3) -> st.SearchStrategy[Any]:
    """Nested messages: dicts (sometimes another `Mapping`), lists, scalars."""
    scalars = st.sampled_from(SCALARS)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3).map(OrderedDict),
            st.lists(inner, max_size=3),
        ),
        max_leaves=12,
    )


constants = st.sampled_from([None, "", "  ", [], {}, 0, False, True, 1, 1.0, "x", "fb", "USD"])


@st.composite
def specs(draw: st.DrawFn) -> FieldSpec:
    paths = draw(st.lists(st.sampled_from(PATHS), max_size=3))
    transforms = draw(st.lists(st.sampled_from(TRANSFORMS), max_size=2))
    return FieldSpec(
        path=paths,
        value=draw(constants),
        transform=transforms,
        fallback=draw(constants),
        required=draw(st.booleans()),
    )


field_maps = st.dictionaries(st.sampled_from([f"f{i}" for i in range(8)]), specs(), max_size=8)
messages = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), trees(), max_size=6),
    st.dictionaries(st.sampled_from(KEYS), trees(), max_size=4).map(OrderedDict),
)


# Properties ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_maps, st.lists(messages, min_size=1, max_size=4))
def test_generated_resolver_matches_the_reference(
    fields: dict[str, FieldSpec], records: list[dict[str, Any]]
) -> None:
    compiled = resolver_for(fields)
    for data in records:
        expected = outcome(reference, fields, data)
        assert outcome(compiled, data) == expected
        assert outcome(resolve, fields, data) == expected
        assert outcome(resolve_planned, fields, data) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TRANSFORMS), min_size=1, max_size=3), st.sampled_from(SCALARS))
def test_transform_fast_paths_match_the_chain(names: list[str], value: Any) -> None:
    fields = {"f": FieldSpec(path=["x"], transform=names, fallback="fb")}
    data = {"x": value, "y": value}
    assert outcome(resolve, fields, data) == outcome(reference, fields, data)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_over_every_sample_value(name: str) -> None:
    fields = {"f": FieldSpec(path=["x"], transform=[name], fallback="fb", required=True)}
    for value in SCALARS:
        data = {"x": value}
        assert outcome(resolve, fields, data) == outcome(reference, fields, data), value


@given(st.sampled_from(TIMES))
def test_canonical_utc_text_is_its_own_iso8601(text: str) -> None:
    if is_canonical_utc(text):
        assert apply_transforms(text, ["iso8601"]) == text
        if not text.startswith("0"):  # years before 1000 take the chain (strftime)
            assert apply_transforms(text, ["date:%Y-%m-%d"]) == text[:10]


# Examples ----------------------------------------------------------------------------------


EVENT = {
    "email": FieldSpec.model_validate(
        {"path": ["context.traits.email", "traits.email"], "transform": ["trim", "lower"]}
    ),
    "metric": FieldSpec.model_validate(
        {"path": ["event", "name"], "fallback": "Page Viewed", "required": True}
    ),
    "time": FieldSpec.model_validate({"path": "timestamp", "transform": "iso8601"}),
    "day": FieldSpec.model_validate({"path": "timestamp", "transform": "date:%Y-%m-%d"}),
    "value_minor": FieldSpec.model_validate(
        {"path": ["properties.revenue", "properties.price"], "transform": "minor_units"}
    ),
    "product": FieldSpec.model_validate({"path": "properties.products[0].name"}),
}


def test_an_event_map() -> None:
    data = {
        "traits": {"email": " Ann@Example.COM "},
        "name": "Home",
        "timestamp": "2026-01-05T00:05:33.118Z",
        "properties": {"price": 32.0, "products": [{"name": "Bottle"}]},
    }
    out = resolve(EVENT, data)
    assert out.values == {
        "email": "ann@example.com",
        "metric": "Home",
        "time": "2026-01-05T00:05:33.118Z",
        "day": "2026-01-05",
        "value_minor": 3200,
        "product": "Bottle",
    }
    assert out == reference(EVENT, data)


def test_equal_ints_and_floats_keep_their_own_minor_units() -> None:
    spec = {"m": FieldSpec.model_validate({"path": "x", "transform": "minor_units"})}
    as_int = resolve(spec, {"x": 2**53 + 1}).values["m"]
    as_float = resolve(spec, {"x": float(2**53 + 1)}).values["m"]
    assert as_int == 900719925474099300
    assert as_float == 900719925474099200
    assert resolve(spec, {"x": 2**53 + 1}).values["m"] == as_int


def test_a_changed_map_is_resolved_as_it_is_now() -> None:
    fields = {"f": FieldSpec(path=["x"], fallback=True)}
    assert resolve(fields, {}).values == {"f": True}
    fields["f"] = FieldSpec(path=["x"], fallback=1)  # equal to the old spec, not the same
    got = resolve(fields, {}).values["f"]
    assert got == 1 and type(got) is int
    fields["g"] = FieldSpec(value="const")
    assert resolve(fields, {}).values == {"f": 1, "g": "const"}
    del fields["f"]
    assert resolve(fields, {}).values == {"g": "const"}


def test_a_map_rebuilt_per_call_reuses_the_compiled_resolver() -> None:
    defaults = {"f": FieldSpec(path=["x"])}
    first = resolver_for({**defaults})
    assert resolver_for({**defaults}) is first


def test_a_bad_path_raises_only_when_reached_and_in_order() -> None:
    fields = {
        "ok": FieldSpec(path=["a"]),
        "bad": FieldSpec(path=["b", "..."]),
        "worse": FieldSpec(path=["...."]),
    }
    with pytest.raises(ValueError, match=r"not a path: '\.\.\.'"):
        resolve(fields, {"a": 1})
    fields2 = {"ok": FieldSpec(path=["a"]), "bad": FieldSpec(path=["b", "..."])}
    assert resolve(fields2, {"b": "here"}).values == {"bad": "here"}


def test_data_that_is_not_a_dict_takes_the_plain_path() -> None:
    data = OrderedDict(timestamp="2026-01-05T00:05:33.118Z", name=" ")
    assert resolve(EVENT, data) == reference(EVENT, data)


def test_the_kernels_cover_the_common_chains() -> None:
    assert kernel_for(("trim", "lower")) is not None
    assert kernel_for(("iso8601",)) is not None
    assert kernel_for(("date:%Y-%m-%d",)) is not None
    assert kernel_for(("minor_units:JPY",)) is not None
    assert kernel_for(("to_number",)) is None
    assert kernel_for(("shout",)) is None


def test_times_with_offsets_and_epochs_use_the_chain() -> None:
    fields = {"t": FieldSpec.model_validate({"path": "x", "transform": "iso8601"})}
    when = datetime(2026, 1, 5, 1, 2, 3, 500000, tzinfo=UTC)
    for value in ("2026-01-05T02:02:03.5+01:00", when, when.timestamp()):
        assert resolve(fields, {"x": value}).values == {"t": "2026-01-05T01:02:03.500Z"}


def test_deep_paths_and_big_maps_resolve_as_the_reference() -> None:
    deep = ".".join(f"k{i}" for i in range(60))
    data: dict[str, Any] = {}
    node = data
    for i in range(59):
        node[f"k{i}"] = node = {}
    node["k59"] = "deep"
    fields = {
        "deep": FieldSpec(path=[deep]),
        "either": FieldSpec(path=["k0.k1.k2.k3.k4.k5.k6.k7.k8.nope", deep], fallback="fb"),
    }
    assert resolve(fields, data) == reference(fields, data)
    assert resolve(fields, data).values["deep"] == "deep"
    big = {f"f{i}": FieldSpec(path=[f"a{i}.b", f"c{i}"], fallback="x") for i in range(1500)}
    sample = {"a7": {"b": "y"}, "c9": "z"}
    assert resolve(big, sample) == reference(big, sample)
