"""Compiled paths and field specs read exactly what the plain walk reads."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from mapping.fields import FieldSpec, resolve
from mapping.paths import compile_path, get_path, walk

DATA: dict[str, Any] = {
    "a": {"b": {"c": "deep", "zero": 0}, "list": [{"sku": "S1"}, None], "blank": ""},
    "top": "t",
    "ordered": OrderedDict(x={"y": "from a Mapping"}),
    "text": "not a dict",
    "none": None,
}

PATHS = [
    "top",
    "$.top",
    "a.b.c",
    "$.a.b.c",
    "a.b.zero",
    "a.b.missing",
    "a.list[0].sku",
    "a.list[1].sku",
    "a.list[5]",
    "a.list.sku",
    "ordered.x.y",
    "text.length",
    "text.a.b",
    "none.a",
    "none.a.b",
    "a.b.c.d",
    "a.b.c.d.e",
    "missing",
    "",
    "$",
]


@pytest.mark.parametrize("path", PATHS)
def test_get_path_matches_the_plain_walk(path: str) -> None:
    assert get_path(DATA, path) == walk(DATA, compile_path(path))


@pytest.mark.parametrize("path", PATHS)
def test_paths_over_a_mapping_that_is_not_a_dict(path: str) -> None:
    data = OrderedDict(DATA)
    assert get_path(data, path) == walk(data, compile_path(path))


def test_known_values() -> None:
    assert get_path(DATA, "a.b.c") == "deep"
    assert get_path(DATA, "a.b.zero") == 0
    assert get_path(DATA, "a.list[0].sku") == "S1"
    assert get_path(DATA, "ordered.x.y") == "from a Mapping"
    assert get_path(DATA, "text.length") is None
    assert get_path(DATA, "a.list.sku") is None


def test_a_bad_path_fails_when_read() -> None:
    spec = FieldSpec(path=["top", "..."])
    assert resolve({"f": spec}, DATA).values == {"f": "t"}
    with pytest.raises(ValueError, match="not a path"):
        resolve({"f": spec}, {"top": " "})


def test_a_copied_spec_is_compiled_anew() -> None:
    spec = FieldSpec(path=["a.b.c"], fallback="fb")
    assert resolve({"f": spec}, DATA).values == {"f": "deep"}
    other = spec.model_copy(update={"path": ["a.b.missing"]})
    assert resolve({"f": other}, DATA).values == {"f": "fb"}
    assert resolve({"f": spec}, DATA).values == {"f": "deep"}


def test_compiling_does_not_change_how_specs_compare() -> None:
    spec, twin = FieldSpec(path=["top"]), FieldSpec(path=["top"])
    resolve({"f": spec}, DATA)
    assert spec == twin


def test_blank_values_fall_back_and_bad_values_are_invalid() -> None:
    specs = {
        "trimmed": FieldSpec.model_validate({"path": "x", "transform": "trim", "fallback": "fb"}),
        "gone": FieldSpec.model_validate({"path": "x", "transform": "trim", "required": True}),
    }
    out = resolve(specs, {"x": "   \t"})
    assert out.values == {"trimmed": "fb"}
    assert out.missing == ["gone"]
    out = resolve(specs, {"x": ["", ""]})
    assert out.values == {}
    assert set(out.invalid) == {"trimmed", "gone"}
