"""tags: add/remove from traits plus static tags; idempotent POST shape."""

from __future__ import annotations

from connectors.base import Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import tags
from tests.connectors.mailchimp.mc_testkit import LIST_ID, identify, settings, validate_body


def test_tags_from_traits_and_static_tags() -> None:
    dest = MailchimpDestination("mc", settings(static_tags=["espbridge"]))
    msg = identify("a@example.com", tags="vip, beta", removed_tags=["trial"])
    [record] = [r for r in dest.map(msg, None) if isinstance(r, Record) and r.action == "tags"]
    request = tags.build_request(LIST_ID, record.fields, False)
    assert request.json == {
        "tags": [
            {"name": "espbridge", "status": "active"},
            {"name": "vip", "status": "active"},
            {"name": "beta", "status": "active"},
            {"name": "trial", "status": "inactive"},
        ],
        "is_syncing": False,
    }
    assert validate_body(request.method, request.path, request.json) == []


def test_no_tag_changes_means_no_tags_record() -> None:
    dest = MailchimpDestination("mc", settings())
    out = dest.map(identify("a@example.com"), None)
    assert [r.action for r in out if isinstance(r, Record)] == ["upsert_member"]
    assert len(out) == 1


def test_a_tag_added_and_removed_is_removed() -> None:
    assert tags.tag_changes(["a", "b"], ["a"]) == [
        {"name": "b", "status": "active"},
        {"name": "a", "status": "inactive"},
    ]
