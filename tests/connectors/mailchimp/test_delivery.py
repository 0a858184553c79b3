"""Exactly once without an idempotency key: read-back after lost answers, journey markers."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from connectors.base import OutcomeStatus, Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import journey_trigger
from connectors.mailchimp.hashing import subscriber_hash
from tests.connectors.mailchimp.fake_mailchimp import FakeMailchimp
from tests.connectors.mailchimp.mc_testkit import settings, track

EMAIL = "a@example.com"
HASH = subscriber_hash(EMAIL)
JOURNEYS = {"Cart Abandoned": {"journey_id": 3, "step_id": 4}}


def destination(fake: FakeMailchimp, **overrides: object) -> MailchimpDestination:
    s = settings(journeys=JOURNEYS, **overrides)
    return MailchimpDestination("mc", s, transport=httpx.MockTransport(fake))


def record_of(dest: MailchimpDestination, event: str, uncertain: bool = False) -> Record:
    [record] = dest.map(track(EMAIL, event, message_id="k1"), None)
    assert isinstance(record, Record)
    return dataclasses.replace(record, uncertain=uncertain)


async def send(dest: MailchimpDestination, record: Record) -> tuple[OutcomeStatus, str | None]:
    await dest.process_record(record)
    [outcome] = await dest.drain()
    await dest.aclose()
    return outcome.status, outcome.reason


async def test_intent_log_is_declared() -> None:
    assert MailchimpDestination.intent_log is True


@pytest.mark.parametrize("fault", ["reset_after", "reset_before"])
async def test_a_lost_event_answer_is_read_back_and_the_event_stored_once(fault: str) -> None:
    fake = FakeMailchimp()
    fake.fault("POST", "/events", fault)
    dest = destination(fake)
    status, _ = await send(dest, record_of(dest, "Viewed Product"))
    assert status == OutcomeStatus.ACKNOWLEDGED
    assert fake.names(HASH) == ["viewed_product"]
    methods = [r.method for r in fake.requests]
    assert methods == (["POST", "GET"] if fault == "reset_after" else ["POST", "GET", "POST"])


async def test_an_uncertain_record_already_applied_is_not_sent_again() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    record = record_of(dest, "Viewed Product")
    fake.events[HASH].append(
        {"name": "viewed_product", "properties": {"espbridge_key": record.key}}
    )
    status, _ = await send(dest, dataclasses.replace(record, uncertain=True))
    assert status == OutcomeStatus.ACKNOWLEDGED
    assert [r.method for r in fake.requests] == ["GET"]


async def test_an_uncertain_record_never_applied_is_sent() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    status, _ = await send(dest, record_of(dest, "Viewed Product", uncertain=True))
    assert status == OutcomeStatus.ACKNOWLEDGED
    assert fake.names(HASH) == ["viewed_product"]


async def test_a_journey_trigger_is_bracketed_by_markers() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    status, _ = await send(dest, record_of(dest, "Cart Abandoned"))
    assert status == OutcomeStatus.ACKNOWLEDGED
    assert fake.triggers == [EMAIL]
    assert fake.names(HASH) == [journey_trigger.INTENT_MARKER, journey_trigger.SENT_MARKER]


async def test_uncertain_trigger_with_a_sent_marker_is_acknowledged_without_resending() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    record = record_of(dest, "Cart Abandoned", uncertain=True)
    fake.events[HASH].append(
        {"name": journey_trigger.SENT_MARKER, "properties": {"espbridge_key": record.key}}
    )
    status, _ = await send(dest, record)
    assert status == OutcomeStatus.ACKNOWLEDGED and fake.triggers == []


async def test_uncertain_trigger_without_an_intent_marker_was_never_sent_so_it_is_sent() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    status, _ = await send(dest, record_of(dest, "Cart Abandoned", uncertain=True))
    assert status == OutcomeStatus.ACKNOWLEDGED and fake.triggers == [EMAIL]


async def test_uncertain_trigger_with_only_an_intent_marker_is_reported_not_resent() -> None:
    fake = FakeMailchimp()
    dest = destination(fake)
    record = record_of(dest, "Cart Abandoned", uncertain=True)
    fake.events[HASH].append(
        {"name": journey_trigger.INTENT_MARKER, "properties": {"espbridge_key": record.key}}
    )
    status, reason = await send(dest, record)
    assert status == OutcomeStatus.REJECTED and "unconfirmed" in (reason or "")
    assert fake.triggers == []


@pytest.mark.parametrize(("policy", "triggers"), [("reject", 1), ("resend", 2)])
async def test_a_trigger_whose_answer_is_lost(policy: str, triggers: int) -> None:
    fake = FakeMailchimp()
    fake.fault("POST", "/trigger", "reset_after")
    dest = destination(fake, journey_unconfirmed=policy)
    status, reason = await send(dest, record_of(dest, "Cart Abandoned"))
    assert len(fake.triggers) == triggers
    if policy == "reject":
        assert status == OutcomeStatus.REJECTED
        assert "may or may not have entered a@example.com into journey 3 step 4" in (reason or "")
    else:
        assert status == OutcomeStatus.ACKNOWLEDGED


async def test_a_trigger_for_someone_not_in_the_audience_is_rejected() -> None:
    fake = FakeMailchimp()
    response = httpx.Response(
        404,
        json={
            "title": "Resource Not Found",
            "detail": "The requested resource could not be found.",
        },
    )
    fake.fault("POST", "/events", response)
    dest = destination(fake)
    status, reason = await send(dest, record_of(dest, "Cart Abandoned"))
    assert status == OutcomeStatus.REJECTED and "Resource Not Found" in (reason or "")
    assert fake.triggers == []
