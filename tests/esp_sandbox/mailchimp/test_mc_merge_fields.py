"""Merge fields: defaults, creation, required fields and per-type validation on members."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.esp_sandbox.mailchimp.mc_helpers import LIST_ID, put_member

FIELDS = f"/lists/{LIST_ID}/merge-fields"


def _add(mc: httpx.Client, **body: Any) -> httpx.Response:
    return mc.post(FIELDS, json=body)


def test_new_audience_has_mailchimp_default_fields(mc: httpx.Client) -> None:
    page = mc.get(FIELDS, params={"count": 100}).json()
    assert [(f["tag"], f["type"]) for f in page["merge_fields"]] == [
        ("FNAME", "text"),
        ("LNAME", "text"),
        ("ADDRESS", "address"),
        ("PHONE", "phone"),
        ("BIRTHDAY", "birthday"),
    ]
    assert page["total_items"] == 5
    assert page["merge_fields"][4]["options"]["date_format"] == "MM/DD"
    assert not any(f["required"] for f in page["merge_fields"])


def test_count_offset_and_type_filter(mc: httpx.Client) -> None:
    page = mc.get(FIELDS, params={"count": 2, "offset": 1}).json()
    assert [f["tag"] for f in page["merge_fields"]] == ["LNAME", "ADDRESS"]
    assert mc.get(FIELDS, params={"type": "text"}).json()["total_items"] == 2


def test_create_field_validates_type_tag_and_duplicates(mc: httpx.Client) -> None:
    made = _add(mc, tag="plan", name="Plan", type="dropdown", options={"choices": ["free", "pro"]})
    assert made.status_code == 200
    assert made.json()["tag"] == "PLAN"
    assert _add(mc, tag="PLAN", name="Plan again", type="text").status_code == 400
    bad_type = _add(mc, tag="X", name="X", type="boolean")
    assert bad_type.json()["errors"][0]["field"] == "type"
    missing = _add(mc, tag="Y")
    assert {e["field"] for e in missing.json()["errors"]} == {"name", "type"}
    too_long = _add(mc, tag="ABCDEFGHIJK", name="Long", type="text")
    assert too_long.json()["errors"][0]["field"] == "tag"
    auto = _add(mc, name="No tag", type="text").json()
    assert auto["tag"].startswith("MMERGE")


def test_required_field_missing_is_rejected_naming_the_tag(mc: httpx.Client) -> None:
    _add(mc, tag="COMPANY", name="Company", type="text", required=True)
    response = put_member(mc, "ann@example.com", merge_fields={"FNAME": "Ann"})
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Resource"
    assert body["detail"] == "Your merge fields were invalid."
    assert body["errors"] == [{"field": "COMPANY", "message": "Please enter a value"}]
    skipped = put_member(mc, "ann@example.com")
    assert skipped.status_code == 400
    allowed = mc.put(
        f"/lists/{LIST_ID}/members/ann@example.com",
        params={"skip_merge_validation": "true"},
        json={"email_address": "ann@example.com", "status_if_new": "subscribed"},
    )
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ({"tag": "AGE", "type": "number"}, 42, "forty"),
        ({"tag": "AGE", "type": "number"}, "42.5", {"n": 1}),
        ({"tag": "SINCE", "type": "date"}, "12/31/2024", "31/12/2024"),
        ({"tag": "SINCE", "type": "date"}, "2024-12-31", "2024-31-12"),
        (
            {"tag": "SINCE", "type": "date", "options": {"date_format": "DD/MM/YYYY"}},
            "31/12/2024",
            "12/31/2024",
        ),
        ({"tag": "BIRTHDAY", "type": None}, "05/06", "2000-05-06"),
        ({"tag": "BIRTHDAY", "type": None}, "02/29", "13/01"),
        (
            {"tag": "ADDRESS", "type": None},
            {"addr1": "1 Main", "city": "Town", "state": "CA", "zip": "12345"},
            {"addr1": "1 Main", "city": "Town"},
        ),
        (
            {"tag": "ADDRESS", "type": None},
            {"addr1": "1", "city": "c", "state": "s", "zip": "z"},
            "1 Main St",
        ),
        ({"tag": "PHONE", "type": None}, "+1 415 555 0100", "call me"),
        (
            {"tag": "USPHONE", "type": "phone", "options": {"phone_format": "US"}},
            "415-555-0100",
            "+44 20 7946 0958",
        ),
        ({"tag": "SITE", "type": "url"}, "https://example.com/x", "example dot com"),
        ({"tag": "PLAN", "type": "radio", "options": {"choices": ["free", "pro"]}}, "pro", "gold"),
        ({"tag": "ZIPCODE", "type": "zip"}, "94107", "ABCDE"),
        ({"tag": "FNAME", "type": None}, "Ann", {"first": "Ann"}),
    ],
)
def test_merge_values_are_validated_by_type(
    mc: httpx.Client, field: dict[str, Any], good: Any, bad: Any
) -> None:
    tag = field["tag"]
    if field["type"] is not None:
        made = _add(mc, name=tag.title(), **field)
        assert made.status_code == 200, made.text
    ok = put_member(mc, "ann@example.com", merge_fields={tag: good})
    assert ok.status_code == 200, ok.text
    rejected = put_member(mc, "bob@example.com", merge_fields={tag: bad})
    assert rejected.status_code == 400, rejected.text
    assert rejected.json()["errors"][0]["field"] == tag


def test_unknown_merge_tags_are_ignored(mc: httpx.Client) -> None:
    response = put_member(mc, "ann@example.com", merge_fields={"NOSUCHTAG": "x", "FNAME": "Ann"})
    assert response.status_code == 200
    assert "NOSUCHTAG" not in response.json()["merge_fields"]


def test_empty_string_clears_a_value(mc: httpx.Client) -> None:
    put_member(mc, "ann@example.com", merge_fields={"FNAME": "Ann"})
    cleared = put_member(mc, "ann@example.com", merge_fields={"FNAME": ""})
    assert cleared.json()["merge_fields"]["FNAME"] == ""


def test_null_array_and_boolean_values_fail_the_schema(mc: httpx.Client) -> None:
    for value in (None, ["Ann"], True):
        response = put_member(mc, "ann@example.com", merge_fields={"FNAME": value, "OTHER": "x"})
        assert response.status_code == 400
        body = response.json()
        assert body["detail"].startswith("The resource submitted could not be validated.")
        assert body["errors"] == [
            {
                "field": "merge_fields.FNAME",
                "message": "Data did not match any of the schemas described in anyOf.",
            }
        ]
