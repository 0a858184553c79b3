"""Pre-send validation and the recommendations content block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mapping.content import ProductView, recommendations
from mapping.validate import (
    check_klaviyo_metric,
    check_klaviyo_profile,
    check_klaviyo_properties,
    check_mailchimp_event,
    check_merge_fields,
    is_e164,
    is_email,
    reject,
)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ann@example.com", True),
        ("a.b+tag@sub.example.co.uk", True),
        ("ann@localhost", False),
        ("ann@@example.com", False),
        ("ann example@x.com", False),
        ("ann..b@x.com", False),
        (None, False),
    ],
)
def test_email_syntax(value: object, ok: bool) -> None:
    assert is_email(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [("+14155552671", True), ("14155552671", False), ("+0123", False)]
)
def test_e164(value: str, ok: bool) -> None:
    assert is_e164(value) is ok


def test_mailchimp_merge_fields() -> None:
    found = check_merge_fields({"FNAME": "Ann", "FIRSTNAME_X": "x", "lname": "y", "BIO": "z" * 256})
    assert [(v.field, v.reason) for v in found] == [
        ("merge_fields.FIRSTNAME_X", "a merge tag is 1-10 characters of A-Z, 0-9 and _"),
        ("merge_fields.lname", "a merge tag is 1-10 characters of A-Z, 0-9 and _"),
        ("merge_fields.BIO", "256 characters; at most 255"),
    ]


def test_mailchimp_event() -> None:
    found = check_mailchimp_event("x", {"total": 12})
    assert [v.field for v in found] == ["event.name", "event.properties.total"]


def test_klaviyo_limits() -> None:
    many = {f"p{i}": i for i in range(401)}
    big = {"html": "x" * (100 * 1024 + 1), "ok": "x" * 1000}
    assert [v.field for v in check_klaviyo_properties(many)] == ["properties"]
    assert [v.field for v in check_klaviyo_properties(big)] == ["properties.html"]
    assert check_klaviyo_metric("Placed Order") == []
    assert "less than 128" in check_klaviyo_metric("x" * 128)[0].reason
    found = check_klaviyo_profile({"email": "nope", "phone_number": "555"})
    assert [v.field for v in found] == ["profile.email", "profile.phone_number"]
    assert "needs email" in check_klaviyo_profile({"first_name": "Ann"})[0].reason


def test_reject_names_record_field_and_reason() -> None:
    rows = reject(
        "s3://b/k.gz:12",
        check_klaviyo_profile({"email": "nope"}),
        destination="klaviyo",
        key="key-1",
        payload={"email": "nope"},
    )
    assert [(r.source_ref, r.field, r.stage, r.destination, r.key) for r in rows] == [
        ("s3://b/k.gz:12", "profile.email", "mapping", "klaviyo", "key-1")
    ]
    assert rows[0].reason == "not an email address: 'nope'"


NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
BEST = [{"product_id": "B1", "name": "Best 1"}, {"product_id": "P2"}, {"product_id": "B3"}]


def view(pid: str, days_ago: float) -> ProductView:
    return ProductView(pid, NOW - timedelta(days=days_ago), {"name": pid.lower()})


def test_recommendations_rank_recent_unbought_views() -> None:
    views = [view("P1", 1), view("P2", 2), view("P2", 3), view("P3", 0.5), view("P4", 8)]
    block = recommendations(views, bought=["P3"], now=NOW, top=3, fallback=BEST)
    # P2 viewed twice, then P1; P3 bought, P4 outside the 7 days; B1 fills the last slot.
    assert [p["product_id"] for p in block.value] == ["P2", "P1", "B1"]
    assert block.value[0] == {"product_id": "P2", "name": "p2"}
    assert block.fallback_used


def test_recommendations_without_views_are_the_bestsellers() -> None:
    block = recommendations([], bought=["B1"], now=NOW, fallback=BEST)
    assert [p["product_id"] for p in block.value] == ["P2", "B3"]
    assert block.fallback_used


def test_recommendations_enough_views_use_no_fallback() -> None:
    views = [view("P1", 1), view("P2", 2), view("P3", 3), view("P9", -1)]  # P9 is in the future
    block = recommendations(views, bought=[], now=NOW, fallback=BEST)
    assert [p["product_id"] for p in block.value] == ["P1", "P2", "P3"]
    assert not block.fallback_used
