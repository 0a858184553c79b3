"""The per-record checks after mapping (fast paths) against their plain definitions."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.fields import FallbackCounter, Resolved
from mapping.validate import (
    _EMAIL,
    KLAVIYO_MAX_METRIC_NAME,
    Violation,
    check_email,
    check_klaviyo_metric,
    is_email,
    reject,
)


class Text(str):
    """A `str` that is not exactly `str`."""


def plain_is_email(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 254 or ".." in value:
        return False
    local, _, _ = value.partition("@")
    return len(local) <= 64 and _EMAIL.match(value) is not None


def plain_metric(name: Any, field: str) -> list[Violation]:
    if not isinstance(name, str) or not name.strip():
        return [Violation(field, "a metric needs a name")]
    if len(name) > KLAVIYO_MAX_METRIC_NAME:
        return [Violation(field, f"{len(name)} characters; must be less than 128")]
    return []


texts = st.one_of(
    st.text(max_size=12),
    st.from_regex(re.compile(r"[a-z.]{0,70}@[a-z-]{1,5}(\.[a-z]{2,3}){0,2}"), fullmatch=True),
    st.sampled_from(["", " ", "\u3000", "a" * 127, "a" * 128, " a" * 64, "a@b.co", "a..b@c.de"]),
)
values = st.one_of(texts, texts.map(Text), st.sampled_from([None, 0, 1.5, [], {}, b"a@b.co"]))


@settings(max_examples=500)
@given(values)
def test_email_and_metric_checks_match_their_definitions(value: Any) -> None:
    assert is_email(value) == plain_is_email(value)
    assert is_email(value) == plain_is_email(value)  # memoised the second time
    reason = f"not an email address: {repr(value)[:60]}"
    assert check_email(value, "e") == ([] if plain_is_email(value) else [Violation("e", reason)])
    assert check_klaviyo_metric(value, "m") == plain_metric(value, "m")


def test_checks_return_a_new_list_each_time() -> None:
    first, second = check_email("a@b.co"), check_email("a@b.co")
    first.append(Violation("x", "y"))
    assert second == [] and check_klaviyo_metric("Viewed") is not check_klaviyo_metric("Viewed")
    assert reject("r", []) is not reject("r", [])


@given(
    st.lists(st.sampled_from(["a", "b", Text("a"), "c"]), max_size=5), st.sampled_from(["", "p."])
)
def test_fallback_counter_counts_as_before(names: list[str], prefix: str) -> None:
    counter = FallbackCounter()
    counter.add(Resolved({}, list(names), [], {}), prefix)
    counter.add(Resolved({}, list(names), [], {}), prefix)
    expected: Counter[str] = Counter()
    for name in names * 2:
        expected[f"{prefix}{name}"] += 1
    assert counter == expected
    assert all(type(key) is str for key in counter)


def test_rejects_and_reject_when_nothing_is_wrong_or_something_is() -> None:
    assert Resolved({"a": 1}, [], [], {}).rejects("r") == []
    rows = Resolved({}, [], ["m"], {"z": "bad", "b": "worse"}).rejects("r", prefix="p.")
    assert [(r.field, r.reason) for r in rows] == [
        ("p.m", "no value and no fallback"),
        ("p.b", "worse"),
        ("p.z", "bad"),
    ]
    assert reject("r", []) == []
    assert [r.field for r in reject("r", iter([Violation("f", "why")]))] == ["f"]
    assert [r.field for r in reject("r", (Violation("f", "why"),))] == ["f"]
