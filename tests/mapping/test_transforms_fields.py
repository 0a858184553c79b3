"""Transforms applied by `mapping.fields.resolve`, fallbacks, invalid fields and counters."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from mapping.fields import FallbackCounter, FieldSpec, resolve
from mapping.transforms import TransformError, apply_transforms, compile_transform

MESSAGE = {
    "traits": {"email": "  Ann@Example.COM ", "first_name": "", "phone": "(415) 555-2671"},
    "properties": {"price": "19.99", "yen": 1200, "when": "2026-03-04T05:06:07+01:00"},
    "context": {"traits": {"first_name": "Ann"}},
}


@pytest.mark.parametrize(
    ("transforms", "value", "expected"),
    [
        (["trim", "lower"], "  Ann@Example.COM ", "ann@example.com"),
        (["upper"], "abc", "ABC"),
        (["e164:US"], "(415) 555-2671", "+14155552671"),
        (["e164"], "+44 20 7946 0958", "+442079460958"),
        (["date:%Y-%m-%d"], "2026-03-04T23:30:00-02:00", "2026-03-05"),
        (["date:%d/%m/%Y"], 0, "01/01/1970"),
        (["iso8601"], "2026-03-04", "2026-03-04T00:00:00.000Z"),
        (["iso8601"], "2026-03-04T01:02:03.5+01:00", "2026-03-04T00:02:03.500Z"),
        (["truncate:3"], "abcdef", "abc"),
        (["to_string"], 3.0, "3"),
        (["to_string"], True, "true"),
        (["to_number"], "12.50", 12.5),
        (["to_number"], "12", 12),
        (["minor_units"], "19.99", 1999),
        (["minor_units"], 0.125, 12),  # half-even
        (["minor_units:JPY"], 1200, 1200),
        (["minor_units:KWD"], "1.2345", 1234),
        (["subscriber_hash"], " Ann@Example.com", hashlib.md5(b"ann@example.com").hexdigest()),
    ],
)
def test_transforms(transforms: list[str], value: object, expected: object) -> None:
    assert apply_transforms(value, transforms) == expected


@pytest.mark.parametrize(
    ("transform", "value", "reason"),
    [
        ("e164", "555-2671", "e164"),
        ("e164:US", "12", "phone"),
        ("date:%Y", "yesterday", "not an ISO-8601"),
        ("minor_units", "ten", "not an amount"),
        ("lower", {"a": 1}, "needs text"),
        ("to_number", "1e", "not a number"),
    ],
)
def test_transform_failures_say_why(transform: str, value: object, reason: str) -> None:
    with pytest.raises(TransformError, match=reason):
        apply_transforms(value, [transform])


@pytest.mark.parametrize("bad", ["shout", "truncate:x", "truncate:0", "date:", "minor_units:EURO"])
def test_unknown_or_bad_transforms_fail_at_config_load(bad: str) -> None:
    with pytest.raises(ValueError):
        compile_transform(bad)
    with pytest.raises(ValidationError, match="transform"):
        FieldSpec.model_validate({"path": "traits.email", "transform": [bad]})


def test_resolve_applies_transforms_and_fallbacks() -> None:
    specs = {
        "email": FieldSpec.model_validate({"path": "traits.email", "transform": ["trim", "lower"]}),
        "first_name": FieldSpec.model_validate(
            {"path": ["traits.first_name", "traits.nickname"], "fallback": "there"}
        ),
        "price": FieldSpec.model_validate(
            {"path": "properties.price", "transform": "minor_units", "required": True}
        ),
        "phone": FieldSpec.model_validate({"path": "traits.phone", "transform": "e164:US"}),
        "day": FieldSpec.model_validate({"path": "properties.when", "transform": "date:%Y-%m-%d"}),
        "zero": FieldSpec.model_validate({"value": 0}),
    }
    out = resolve(specs, MESSAGE)
    assert out.values == {
        "email": "ann@example.com",
        "first_name": "there",
        "price": 1999,
        "phone": "+14155552671",
        "day": "2026-03-04",
        "zero": 0,
    }
    assert out.fallbacks_used == ["first_name"]
    assert out.ok


def test_failed_transform_makes_the_field_invalid_not_a_fallback() -> None:
    specs = {
        "price": FieldSpec.model_validate(
            {"path": "properties.when", "transform": "minor_units", "fallback": 0}
        )
    }
    out = resolve(specs, MESSAGE)
    assert out.values == {}
    assert "minor_units: not an amount" in out.invalid["price"]
    assert not out.ok
    [row] = out.rejects("file.jsonl:7", destination="klaviyo", key="k1", prefix="track_event.")
    assert (row.source_ref, row.field, row.stage, row.destination, row.key) == (
        "file.jsonl:7",
        "track_event.price",
        "mapping",
        "klaviyo",
        "k1",
    )
    assert "not an amount" in row.reason


def test_required_field_without_value_or_fallback_is_a_reject_not_an_empty_send() -> None:
    spec = FieldSpec.model_validate({"path": "traits.first_name", "required": True})
    specs = {"first_name": spec}
    out = resolve(specs, MESSAGE)
    assert "first_name" not in out.values
    assert [(r.field, r.reason) for r in out.rejects("m1")] == [
        ("first_name", "no value and no fallback")
    ]


def test_zero_and_false_are_values_not_blanks() -> None:
    data = {"properties": {"count": 0, "vip": False, "note": "  "}}
    specs = {
        "count": FieldSpec.model_validate({"path": "properties.count", "fallback": 5}),
        "vip": FieldSpec.model_validate({"path": "properties.vip", "fallback": True}),
        "note": FieldSpec.model_validate({"path": "properties.note", "fallback": "n/a"}),
    }
    out = resolve(specs, data)
    assert out.values == {"count": 0, "vip": False, "note": "n/a"}
    assert out.fallbacks_used == ["note"]


def test_fallback_counter_merges() -> None:
    specs = {"first_name": FieldSpec.model_validate({"path": "x", "fallback": "there"})}
    one, two = FallbackCounter(), FallbackCounter()
    one.add(resolve(specs, {}))
    two.add_all([resolve(specs, {}), resolve(specs, {"x": "Ann"})], prefix="flow.")
    one.update(two)
    assert one.as_dict() == {"first_name": 1, "flow.first_name": 1}
