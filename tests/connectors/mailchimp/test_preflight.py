"""Preflight: the merge field mapping checked against the audience before any send."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.mailchimp.merge_fields import MergeField
from connectors.mailchimp.preflight import check_merge_fields, preflight
from tests.connectors.mailchimp.mc_testkit import settings

AUDIENCE = [
    MergeField("FNAME", "First Name", "text"),
    MergeField("LNAME", "Last Name", "text"),
    MergeField("BIRTHDAY", "Birthday", "birthday", date_format="MM/DD"),
    MergeField("COMPANY", "Company", "text", required=True),
    MergeField("PLAN", "Plan", "text", required=True),
]


def codes(problems: list[Any]) -> dict[str, str]:
    return {p.field: p.code for p in problems}


def test_a_good_mapping_has_no_problems() -> None:
    s = settings(
        merge_fields={
            "FNAME": {"path": "traits.first_name"},
            "BIRTHDAY": {"path": "traits.birthday", "type": "birthday", "date_format": "MM/DD"},
            "COMPANY": {"path": "traits.company", "fallback": "n/a"},
            "PLAN": {"value": "free"},
        }
    )
    assert check_merge_fields(s, AUDIENCE) == []


def test_every_kind_of_problem_is_reported_at_once() -> None:
    s = settings(
        merge_fields={
            "FNAME": {"path": "traits.first_name", "type": "number"},
            "BIRTHDAY": {"path": "traits.birthday", "type": "birthday", "date_format": "DD/MM"},
            "NICKNAME": {"path": "traits.nickname"},
            "FAVOURITECOLOUR": {"path": "traits.colour"},
            "COMPANY": {"path": "traits.company"},
        }
    )
    problems = check_merge_fields(s, AUDIENCE)
    assert codes(problems) == {
        "merge_fields.FNAME": "type_mismatch",
        "merge_fields.BIRTHDAY": "date_format_mismatch",
        "merge_fields.NICKNAME": "merge_tag_unknown",
        "merge_fields.FAVOURITECOLOUR": "merge_tag_invalid",
        "merge_fields.PLAN": "required_unmapped",
        "merge_fields.COMPANY": "required_without_fallback",
    }
    severity = {p.field: p.severity for p in problems}
    assert severity["merge_fields.COMPANY"] == "warning"
    assert severity["merge_fields.PLAN"] == "error"
    unknown = next(p for p in problems if p.code == "merge_tag_unknown")
    assert "has no merge field NICKNAME" in unknown.message and "FNAME" in unknown.message


async def test_preflight_reads_every_page_of_merge_fields() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/merge-fields")
        return httpx.Response(
            200,
            json={
                "merge_fields": [
                    {"tag": "FNAME", "name": "First", "type": "text", "required": False},
                    {"tag": "ZIP", "name": "Zip", "type": "zip", "required": True},
                ],
                "total_items": 2,
            },
        )

    problems = await preflight(settings(), httpx.MockTransport(answer))
    assert codes(problems) == {
        "merge_fields.LNAME": "merge_tag_unknown",
        "merge_fields.ZIP": "required_unmapped",
    }
