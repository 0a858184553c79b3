"""Sink: flush on size or age while records keep coming; events wait for their member."""

from __future__ import annotations

import asyncio

import httpx

from connectors.base import OutcomeStatus, Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.hashing import subscriber_hash
from tests.connectors.mailchimp.fake_mailchimp import FakeMailchimp
from tests.connectors.mailchimp.mc_testkit import LIST_ID, identify, settings, track


def records(dest: MailchimpDestination, *messages: object) -> list[Record]:
    out = [r for m in messages for r in dest.map(m, None)]  # type: ignore[arg-type]
    assert all(isinstance(r, Record) for r in out)
    return [r for r in out if isinstance(r, Record)]


async def test_a_full_queue_starts_sending_before_drain() -> None:
    fake = FakeMailchimp()
    s = settings(batch={"max_records": 2, "max_age_seconds": 60})
    dest = MailchimpDestination("mc", s, transport=httpx.MockTransport(fake))
    for record in records(dest, *(track(f"p{i}@example.com", "Viewed", f"e{i}") for i in range(4))):
        await dest.process_record(record)
    await asyncio.sleep(0.05)
    assert len(fake.requests) == 4  # two flushes of two, sent in the background
    assert len(await dest.drain()) == 4
    await dest.aclose()


async def test_an_old_queue_is_flushed_on_the_next_record() -> None:
    fake = FakeMailchimp()
    s = settings(batch={"max_records": 100, "max_age_seconds": 0.01})
    dest = MailchimpDestination("mc", s, transport=httpx.MockTransport(fake))
    first, second = records(
        dest, track("a@example.com", "Viewed", "e1"), track("b@example.com", "Viewed", "e2")
    )
    await dest.process_record(first)
    await asyncio.sleep(0.02)
    await dest.process_record(second)
    await asyncio.sleep(0.02)
    assert len(fake.requests) == 2
    assert {o.key for o in await dest.drain()} == {first.key, second.key}
    await dest.aclose()


async def test_an_event_is_sent_only_after_its_members_upsert() -> None:
    fake = FakeMailchimp(delay=0.01)
    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(fake))
    batch = records(
        dest,
        track("a@example.com", "Viewed", "e1"),
        identify("a@example.com"),
        track("b@example.com", "Viewed", "e2"),
    )
    for record in batch:
        await dest.process_record(record)
    outcomes = await dest.drain()
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    member = subscriber_hash("a@example.com")
    calls = [(r.method, r.url.path) for r in fake.requests]
    put_at = calls.index(("PUT", f"/3.0/lists/{LIST_ID}/members/{member}"))
    event_at = calls.index(("POST", f"/3.0/lists/{LIST_ID}/members/{member}/events"))
    assert put_at < event_at
    await dest.aclose()


async def test_process_record_waits_when_two_batches_are_already_in_flight() -> None:
    fake = FakeMailchimp(delay=0.02)
    s = settings(batch={"max_records": 1, "max_age_seconds": 60})
    dest = MailchimpDestination("mc", s, transport=httpx.MockTransport(fake))
    batch = records(dest, *(track(f"p{i}@example.com", "Viewed", f"e{i}") for i in range(6)))
    for record in batch:
        await dest.process_record(record)
    assert len(await asyncio.wait_for(dest.drain(), 5)) == 6
    assert fake.peak <= 3  # two batches in flight, plus the one being queued
    await dest.aclose()
