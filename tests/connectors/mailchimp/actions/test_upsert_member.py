"""upsert_member: mapping, PUT shape, status never sent, merge field conversion."""

from __future__ import annotations

from connectors.base import Customer, Record, Suppressed
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import upsert_member
from connectors.mailchimp.hashing import subscriber_hash
from mapping.types import RejectedRow
from tests.connectors.mailchimp.mc_testkit import (
    LIST_ID,
    identify,
    message,
    settings,
    validate_body,
)


def _records(dest: MailchimpDestination, *args: object, **traits: object) -> list[object]:
    return [r for r in dest.map(identify(*args, **traits), None)]  # type: ignore[arg-type]


def test_identify_maps_to_a_put_with_status_if_new_and_converted_merge_fields() -> None:
    s = settings(
        status_if_new="pending",
        merge_fields={
            "FNAME": {"path": ["traits.first_name", "traits.firstName"]},
            "BIRTHDAY": {"path": "traits.birthday", "type": "birthday"},
            "ADDRESS": {"path": "traits.address", "type": "address"},
            "SCORE": {"path": "traits.score", "type": "number", "fallback": 0},
        },
    )
    dest = MailchimpDestination("mc", s)
    [record] = [
        r
        for r in dest.map(
            identify(
                " Ann@Example.com ",
                firstName="Ann",
                birthday="1990-02-03",
                address={"street": "1 Main", "city": "X", "state": "Y", "postal_code": "9"},
            ),
            None,
        )
        if isinstance(r, Record)
    ]
    request = upsert_member.build_request(LIST_ID, record.fields, "pending", False)
    assert request.method == "PUT"
    assert request.path == f"/lists/{LIST_ID}/members/{subscriber_hash('ann@example.com')}"
    assert request.json == {
        "email_address": "ann@example.com",
        "status_if_new": "pending",
        "merge_fields": {
            "FNAME": "Ann",
            "BIRTHDAY": "02/03",
            "ADDRESS": {"addr1": "1 Main", "city": "X", "state": "Y", "zip": "9"},
            "SCORE": 0,
        },
    }
    assert "status" not in request.json  # an existing member's status is never changed
    assert validate_body(request.method, request.path, request.json) == []


def test_blank_email_is_suppressed_not_rejected() -> None:
    dest = MailchimpDestination("mc", settings())
    out = dest.map(identify("  ", first_name="x"), None)  # blank: no address known
    assert out and all(isinstance(r, Suppressed) and r.reason == "no_email" for r in out)


def test_invalid_address_is_rejected_before_sending() -> None:
    dest = MailchimpDestination("mc", settings())
    [reject] = [r for r in dest.map(identify("not-an-email"), None) if isinstance(r, RejectedRow)]
    assert reject.field == "email" and "not a valid email address" in reject.reason


def test_bad_merge_value_rejects_the_record_naming_the_tag() -> None:
    s = settings(merge_fields={"AGE": {"path": "traits.age", "type": "number"}})
    dest = MailchimpDestination("mc", s)
    [reject] = [
        r
        for r in dest.map(identify("a@example.com", age="old"), None)
        if isinstance(r, RejectedRow)
    ]
    assert reject.field == "merge_fields.AGE"
    assert "expected a number" in reject.reason


def test_mapping_override_from_toml_changes_the_email_path() -> None:
    s = settings(mapping={"upsert_member": {"email": {"path": "traits.work_email"}}})
    dest = MailchimpDestination("mc", s)
    msg = identify("home@example.com", work_email="work@example.com")
    [record] = [r for r in dest.map(msg, None) if isinstance(r, Record)]
    assert record.fields["email"] == "work@example.com"


def test_skip_merge_validation_is_a_query_parameter() -> None:
    request = upsert_member.build_request(LIST_ID, {"email": "a@example.com"}, "subscribed", True)
    assert request.params == {"skip_merge_validation": "true"}


def test_merge_fields_and_email_can_come_from_identity_resolution() -> None:
    s = settings(merge_fields={"PLAN": {"path": ["traits.plan", "customer.traits.plan"]}})
    dest = MailchimpDestination("mc", s)
    customer = Customer("c-1", {"email": ["Known@Example.com"]}, {"plan": "pro"})
    msg = message({"type": "identify", "traits": {"name": "no email here"}})
    [record] = [r for r in dest.map(msg, customer) if isinstance(r, Record)]
    assert record.fields == {"email": "known@example.com", "merge_fields": {"PLAN": "pro"}}
