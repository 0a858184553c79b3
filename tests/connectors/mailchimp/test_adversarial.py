"""A demanding marketer's edge cases: values Mailchimp would misread or refuse, tag order,
batch results, email changes. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest

from connectors.base import Customer, Outcome, OutcomeStatus, Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import batch_subscribe
from connectors.mailchimp.actions.batch_operations import OperationResult
from connectors.mailchimp.hashing import subscriber_hash
from connectors.mailchimp.merge_fields import MergeFieldError, convert
from connectors.mailchimp.settings import MergeFieldSpec
from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from mapping.types import RejectedRow
from tests.connectors.mailchimp.mc_testkit import (
    API_KEY,
    LIST_ID,
    Recorder,
    identify,
    message,
    ok,
    run,
    settings,
)


@pytest.mark.parametrize(
    "value", ["1,5", "12,50", "1.234,5", "nan", "inf", float("nan"), "e5", "."]
)
def test_a_number_that_would_be_misread_is_rejected_naming_the_tag(value: Any) -> None:
    # "1,5" (a decimal comma) used to become 15, "1.234,5" 1.2345 and "nan" a NaN
    # that JSON cannot carry: silently wrong numbers in the audience.
    with pytest.raises(MergeFieldError) as info:
        convert("AGE", MergeFieldSpec(type="number"), value)
    assert info.value.tag == "AGE" and "number" in info.value.reason


@pytest.mark.parametrize(("value", "expected"), [("1,234.5", 1234.5), ("12,345", 12345)])
def test_thousands_separators_are_still_read(value: str, expected: float) -> None:
    assert convert("AGE", MergeFieldSpec(type="number"), value) == expected


@pytest.mark.parametrize(
    ("date_format", "value", "expected"),
    [
        ("MM/DD/YYYY", "04/07/1990", "04/07/1990"),
        ("DD/MM/YYYY", "07/04/1990", "07/04/1990"),
        ("DD/MM/YYYY", "1990-04-07", "07/04/1990"),
    ],
)
def test_a_date_already_in_the_audience_format_is_accepted(
    date_format: str, value: str, expected: str
) -> None:
    spec = MergeFieldSpec(type="date", date_format=date_format)
    assert convert("SIGNUP", spec, value) == expected


def test_a_date_in_the_audience_format_but_impossible_is_rejected() -> None:
    spec = MergeFieldSpec(type="date", date_format="MM/DD/YYYY")
    with pytest.raises(MergeFieldError) as info:
        convert("SIGNUP", spec, "13/45/1990")
    assert "MM/DD/YYYY" in info.value.reason


def test_a_tag_name_over_100_characters_is_rejected_at_mapping_naming_it() -> None:
    # Mailchimp refuses the whole tags call (every other tag of that member with it)
    # for one name over 100 characters; say which one before sending.
    dest = MailchimpDestination("mc", settings())
    long_tag = "x" * 101
    out = dest.map(identify("ann@example.com", tags=["vip", long_tag]), None)
    rejects = [r for r in out if isinstance(r, RejectedRow)]
    assert len(rejects) == 1 and rejects[0].field == "tags"
    assert "100 characters" in rejects[0].reason and "xxxxxxxx" in rejects[0].reason


def test_operations_per_batch_over_mailchimps_1000_is_a_config_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="operations_per_batch"):
        settings(batch={"operations_per_batch": 5000})


def test_a_batch_operation_error_keeps_mailchimps_field_messages() -> None:
    # The direct path says "(FNAME: Please enter a value)"; a batch result said only
    # "Invalid Resource: Your merge fields were invalid." and the user had to guess why.
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": "Invalid Resource",
        "status": 400,
        "detail": "Your merge fields were invalid.",
        "instance": "i-1",
        "errors": [{"field": "FNAME", "message": "Please enter a value"}],
    }
    reason, field = OperationResult("k", 400, body).detail()
    assert (
        reason == "Invalid Resource: Your merge fields were invalid. (FNAME: Please enter a value)"
    )
    assert field == "FNAME"


class SlowAddTags:
    """Mailchimp's tag state for one audience; adding takes longer than removing, so
    two tag calls for one member in flight at once land in the wrong order."""

    def __init__(self) -> None:
        self.active: dict[str, bool] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tags"):
            changes = json.loads(request.content)["tags"]
            if any(c["status"] == "active" for c in changes):
                await asyncio.sleep(0.05)
            for change in changes:
                self.active[change["name"]] = change["status"] == "active"
            return httpx.Response(204)
        return ok(request)


@pytest.mark.parametrize("flush_between", [False, True])
def test_a_tag_added_then_removed_for_one_member_ends_removed(flush_between: bool) -> None:
    fake = SlowAddTags()
    dest = MailchimpDestination("mc", settings(), httpx.MockTransport(fake))
    added = identify("ann@example.com", message_id="m-1", tags=["vip"])
    removed = identify("ann@example.com", message_id="m-2", removed_tags=["vip"])

    async def go() -> list[Any]:
        for i, msg in enumerate((added, removed)):
            if flush_between and i:
                await dest.sink.flush()
            for item in dest.map(msg, None):
                assert isinstance(item, Record)
                await dest.process_record(item)
        outcomes = await dest.drain()
        await dest.aclose()
        return outcomes

    outcomes = asyncio.run(go())
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    assert fake.active == {"vip": False}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=11)) as server:
        yield server


def _members(server: SandboxServer) -> dict[str, Any]:
    members: dict[str, Any] = server.state()["mailchimp"]["lists"][LIST_ID]["members"]
    return members


def _seed(server: SandboxServer, email: str, status: str, tag: str | None = None) -> None:
    base = server.mailchimp_url + f"/lists/{LIST_ID}/members/{subscriber_hash(email)}"
    with httpx.Client(auth=("x", API_KEY), timeout=10) as http:
        body = {"email_address": email, "status_if_new": status}
        http.put(base, json=body).raise_for_status()
        if tag:
            tags = {"tags": [{"name": tag, "status": "active"}]}
            http.post(base + "/tags", json=tags).raise_for_status()


def _identify_as(
    server: SandboxServer, email: str, customer: Customer, **overrides: Any
) -> list[Outcome]:
    async def go() -> list[Outcome]:
        dest = MailchimpDestination("mc", settings(base_url=server.mailchimp_url, **overrides))
        outcomes: list[Outcome] = []
        for item in dest.map(identify(email, first_name="Ann"), customer):
            assert isinstance(item, Record), item
            await dest.process_record(item)
        outcomes = await dest.drain()
        await dest.aclose()
        return outcomes

    return list(asyncio.run(go()))


def _customer(*emails: str, known: tuple[str, ...] = ()) -> Customer:
    hashes = [subscriber_hash(e) for e in known]
    return Customer("c-1", {"email": list(emails), "mailchimp_subscriber_hash": hashes})


BULK_PATHS = {
    "put": {},
    "batch_subscribe": {"batch": {"batch_subscribe_min": 1, "max_age_seconds": 60}},
    "batches": {"batch": {"operations_threshold": 1, "poll_seconds": 0.01}},
}


@pytest.mark.parametrize("path", sorted(BULK_PATHS))
def test_an_email_change_moves_the_member_instead_of_adding_a_second(
    sandbox: SandboxServer, path: str
) -> None:
    # Ann unsubscribed under her old address, then changed it: she must stay one
    # member, unsubscribed, with her tag, not come back subscribed under the new one.
    sandbox.reset()
    _seed(sandbox, "old@example.com", "unsubscribed", tag="vip")
    customer = _customer("new@example.com", "old@example.com", known=("old@example.com",))
    outcomes = _identify_as(sandbox, "New@Example.com", customer, **BULK_PATHS[path])
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED], outcomes
    assert outcomes[0].learned_ids == {
        "mailchimp_subscriber_hash": subscriber_hash("new@example.com")
    }
    members = _members(sandbox)
    assert list(members) == [subscriber_hash("new@example.com")]
    ann = members[subscriber_hash("new@example.com")]
    assert ann["email_address"] == "new@example.com"
    assert ann["status_history"] == ["unsubscribed"] and ann["tags"] == ["vip"]
    assert ann["merge_fields"]["FNAME"] == "Ann"


def test_an_email_change_to_an_address_already_a_member_updates_that_member(
    sandbox: SandboxServer,
) -> None:
    sandbox.reset()
    _seed(sandbox, "old@example.com", "subscribed")
    _seed(sandbox, "new@example.com", "pending")
    customer = _customer("new@example.com", "old@example.com", known=("old@example.com",))
    outcomes = _identify_as(sandbox, "new@example.com", customer)
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED], outcomes
    members = _members(sandbox)
    assert set(members) == {subscriber_hash("old@example.com"), subscriber_hash("new@example.com")}
    assert members[subscriber_hash("new@example.com")]["merge_fields"]["FNAME"] == "Ann"
    assert members[subscriber_hash("new@example.com")]["status"] == "pending"


def test_a_late_message_with_the_old_address_does_not_move_the_member_back(
    sandbox: SandboxServer,
) -> None:
    sandbox.reset()
    _seed(sandbox, "new@example.com", "subscribed")
    both = ("old@example.com", "new@example.com")
    outcomes = _identify_as(sandbox, "new@example.com", _customer(*both, known=both))
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED]
    assert not any(r["method"] == "PATCH" for r in sandbox.requests())
    assert list(_members(sandbox)) == [subscriber_hash("new@example.com")]


def test_through_batches_a_members_second_tag_change_waits_for_its_first(
    sandbox: SandboxServer,
) -> None:
    # Operations of one POST /batches run in no set order: the removal must not ride
    # in the same batch as the addition it undoes.
    sandbox.reset()
    overrides = BULK_PATHS["batches"]
    dest = MailchimpDestination("mc", settings(base_url=sandbox.mailchimp_url, **overrides))
    added = identify("ann@example.com", message_id="m-1", tags=["vip"])
    removed = identify("ann@example.com", message_id="m-2", removed_tags=["vip"])

    async def go() -> list[Outcome]:
        for msg in (added, removed):
            for item in dest.map(msg, None):
                assert isinstance(item, Record)
                await dest.process_record(item)
        outcomes = await dest.drain()
        await dest.aclose()
        return outcomes

    outcomes = asyncio.run(go())
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    for request in sandbox.requests():
        if request["path"].endswith("/batches") and request["method"] == "POST":
            ops = request["body"]["operations"]
            assert sum(op["path"].endswith("/tags") for op in ops) <= 1, ops
    assert _members(sandbox)[subscriber_hash("ann@example.com")]["tags"] == []


def test_a_batch_subscribe_error_keeps_the_field_message() -> None:
    # Mailchimp's errors[] entry says how to fix it in `field_message`; the reject
    # used to keep only "Your merge fields were invalid." and the field's name.
    body = {
        "errors": [
            {
                "email_address": "Ann@Example.com",
                "error": "Your merge fields were invalid.",
                "error_code": "ERROR_GENERIC",
                "field": "FNAME",
                "field_message": "Please enter a value",
            }
        ]
    }
    error = batch_subscribe.parse_errors(body)["ann@example.com"]
    assert error.error == "Your merge fields were invalid. (FNAME: Please enter a value)"
    assert error.field == "FNAME"


@pytest.mark.parametrize(
    "list_id",
    [
        "x/members/0123456789abcdef0123456789abcdef/actions/delete-permanent?",
        "../batches",
        "a1b2 c3",
    ],
)
def test_a_message_naming_an_odd_audience_is_rejected_never_sent(list_id: str) -> None:
    # `integrations.Mailchimp.listId` comes with the message (a browser can set it);
    # pasted into the URL path it steered the event POST to another endpoint, e.g.
    # permanently deleting someone else's member.
    recorder = Recorder(ok)
    dest = MailchimpDestination("mc", settings(), recorder.transport())
    msg = message(
        {
            "type": "track",
            "event": "Viewed",
            "context": {"traits": {"email": "ann@example.com"}},
            "integrations": {"Mailchimp": {"listId": list_id}},
        }
    )
    produced, outcomes = asyncio.run(run(dest, msg))
    assert recorder.requests == [] and outcomes == []
    assert [(r.field, "audience id" in r.reason) for r in produced] == [("list_id", True)]


@pytest.mark.parametrize(
    ("date_format", "value", "ok_"),
    [
        ("MM/DD", "02/29", True),
        ("DD/MM", "31/12", True),
        ("MM/DD", "13/45", False),
        ("MM/DD", "04/31", False),
        ("MM/DD", "31/12", False),
    ],
)
def test_a_birthday_already_written_as_mm_dd_is_checked(
    date_format: str, value: str, ok_: bool
) -> None:
    spec = MergeFieldSpec(type="birthday", date_format=date_format)
    if ok_:
        assert convert("BDAY", spec, value) == value
        return
    with pytest.raises(MergeFieldError) as info:
        convert("BDAY", spec, value)
    assert info.value.tag == "BDAY" and date_format in info.value.reason


def test_an_address_with_utf8_before_the_at_is_rejected_at_mapping() -> None:
    # Mailchimp refuses UTF-8 in an address's prefix (help: "International characters
    # in Mailchimp"): say so, naming the field, instead of a generic invalid address.
    dest = MailchimpDestination("mc", settings())
    out = dest.map(identify("dirección@example.com"), None)
    assert [type(r) for r in out] == [RejectedRow]
    reject = out[0]
    assert isinstance(reject, RejectedRow)
    assert reject.field == "email" and "before the @" in reject.reason


def test_an_internationalized_domain_is_sent_and_keyed_by_its_lowercase_md5(
    sandbox: SandboxServer,
) -> None:
    sandbox.reset()
    outcomes = _identify_as(sandbox, "Ann@Bücher.DE", _customer("ann@bücher.de"))
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED], outcomes
    assert list(_members(sandbox)) == [subscriber_hash("ann@bücher.de")]
