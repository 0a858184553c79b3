"""Against the sandbox, with faults on: each member once with the right status and merge
fields, each event and journey trigger exactly once, compliance-state members untouched;
then read back with the official `mailchimp_marketing` client, a second, independent way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import Outcome, OutcomeStatus, Record
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions import journey_trigger
from connectors.mailchimp.hashing import subscriber_hash
from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from mapping.types import Message
from tests.connectors.mailchimp.mc_testkit import API_KEY, LIST_ID, identify, settings, track

PEOPLE = 40
JOURNEY = {"Cart Abandoned": {"journey_id": 1, "step_id": 1}}
# resets after the server applied the call everywhere; resets before it on member
# routes; throttling and server errors everywhere.
FAULTS = "reset_after=0.06,reset_before@*/members/*=0.04,429=0.04,503=0.03"
MARKERS = {journey_trigger.INTENT_MARKER, journey_trigger.SENT_MARKER}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=5)) as sandbox:
        yield sandbox


def seed_members(server: SandboxServer) -> None:
    """An unsubscribed member, a cleaned one, and a permanently deleted address."""
    base = server.mailchimp_url + f"/lists/{LIST_ID}/members/"
    with httpx.Client(auth=("x", API_KEY), timeout=10) as http:
        for email, status in (
            ("unsub@example.com", "unsubscribed"),
            ("cleaned@example.com", "cleaned"),
            ("gone@example.com", "subscribed"),
        ):
            body = {"email_address": email, "status_if_new": status}
            http.put(base + subscriber_hash(email), json=body).raise_for_status()
        http.post(base + subscriber_hash("gone@example.com") + "/actions/delete-permanent")


def messages() -> list[Message]:
    out: list[Message] = []
    for i in range(PEOPLE):
        email = f"Person{i}@Example.com"
        out.append(
            identify(
                email,
                message_id=f"id-{i}",
                first_name=f"P{i}",
                last_name="Doe",
                birthday="1990-04-0" + str(1 + i % 9),
            )
        )
        for n in range(3):
            out.append(track(email.lower(), "Viewed Product", message_id=f"ev-{i}-{n}", sku=n))
        if i % 2 == 0:
            out.append(track(email.lower(), "Cart Abandoned", message_id=f"ca-{i}", total=9.5))
    for email in ("unsub@example.com", "cleaned@example.com", "gone@example.com"):
        out.append(identify(email, message_id=f"id-{email}", first_name="Kept"))
    return out


def mc_settings(url: str = "https://us1.api.mailchimp.com/3.0") -> Any:
    return settings(
        base_url=url,
        journeys=JOURNEY,
        merge_fields={
            "FNAME": {"path": "traits.first_name"},
            "LNAME": {"path": "traits.last_name"},
            "BIRTHDAY": {"path": "traits.birthday", "type": "birthday"},
        },
        batch={"max_records": 50, "max_age_seconds": 60},
        # Faults hit ~15% of requests: with 6 attempts, one of the run's ~1,000 requests
        # now and then failed six times in a row, which tests the odds, not exactly-once.
        retry={"initial_seconds": 0.01, "max_delay_seconds": 0.05, "max_attempts": 12},
    )


async def sync_once(url: str, records: list[Record]) -> list[Outcome]:
    dest = MailchimpDestination("mc", mc_settings(url))
    for record in records:
        await dest.process_record(record)
    outcomes = await dest.drain()
    await dest.aclose()
    return outcomes


def all_records() -> list[Record]:
    dest = MailchimpDestination("mc", mc_settings())
    records = [r for m in messages() for r in dest.map(m, None)]
    assert all(isinstance(r, Record) for r in records)
    return [r for r in records if isinstance(r, Record)]


def test_faulty_run_then_replay_leaves_everything_exactly_once(server: SandboxServer) -> None:
    server.reset()
    seed_members(server)
    records = all_records()
    server.set_faults(FAULTS)
    first = asyncio.run(sync_once(server.mailchimp_url, records))
    # A crash before the ledger recorded the outcomes: everything comes back pending.
    replayed = [dataclasses.replace(r, uncertain=True) for r in records]
    second = asyncio.run(sync_once(server.mailchimp_url, replayed))
    server.set_faults(None)
    injected = server.stats()["faults_injected"]
    assert injected.get("reset_after") and injected.get("reset_before") and injected.get("429")

    for outcomes in (first, second):
        assert len(outcomes) == len(records)
        by_status = Counter(o.status for o in outcomes)
        rejected = {o.key: o.reason or "" for o in outcomes if o.status != "acknowledged"}
        assert set(rejected) <= {"id-gone@example.com:upsert_member"} | {
            k for k, reason in rejected.items() if "journey trigger unconfirmed" in reason
        }, rejected
        assert by_status[OutcomeStatus.ACKNOWLEDGED] >= len(records) - PEOPLE // 2 - 1

    gone = next(o for o in first if o.key == "id-gone@example.com:upsert_member")
    assert gone.status == OutcomeStatus.REJECTED
    assert (gone.reason or "").startswith("Forgotten Email Not Subscribed")

    state = server.state()["mailchimp"]
    members: dict[str, Any] = state["lists"][LIST_ID]["members"]
    for i in range(PEOPLE):
        member = members[subscriber_hash(f"person{i}@example.com")]
        assert member["email_address"] == f"person{i}@example.com"
        assert member["status"] == "subscribed" and member["status_history"] == ["subscribed"]
        assert member["merge_fields"]["FNAME"] == f"P{i}"
        assert member["merge_fields"]["BIRTHDAY"] == f"04/0{1 + i % 9}"
        keys = Counter(
            e["properties"]["espbridge_key"] for e in member["events"] if e["name"] not in MARKERS
        )
        expected = {f"ev-{i}-{n}:member_event" for n in range(3)}
        assert keys == Counter(expected), f"person{i}: {keys}"
    for email, status in (
        ("unsub@example.com", "unsubscribed"),
        ("cleaned@example.com", "cleaned"),
    ):
        member = members[subscriber_hash(email)]
        assert member["status"] == status and member["status_history"] == [status]
    triggers = Counter(t["email"] for t in state["journey_triggers"])
    assert triggers == Counter({f"person{i}@example.com": 1 for i in range(0, PEOPLE, 2)})
    # the 10-connection limit was never exceeded (no sandbox refusals)
    assert state["connections"]["refused"] == 0 and state["connections"]["peak"] <= 10


def test_official_client_reads_back_what_espbridge_wrote(server: SandboxServer) -> None:
    mailchimp_marketing = pytest.importorskip("mailchimp_marketing")
    server.reset()
    server.set_faults(None)
    records = [r for r in all_records() if r.key.startswith(("id-1:", "ev-1-", "ca-2:"))]
    records += [r for r in all_records() if r.key.startswith("id-2:")]
    outcomes = asyncio.run(sync_once(server.mailchimp_url, records))
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}, [
        o.reason for o in outcomes
    ]

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": API_KEY, "server": "us1"})
    client.api_client.host = server.mailchimp_url  # no "server" substring in it
    member = client.lists.get_list_member(LIST_ID, subscriber_hash("person1@example.com"))
    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "P1"
    assert member["merge_fields"]["BIRTHDAY"] == "04/02"
    events = client.lists.get_list_member_events(
        LIST_ID, subscriber_hash("person1@example.com"), count=1000
    )["events"]
    assert sorted(e["properties"]["espbridge_key"] for e in events) == [
        f"ev-1-{n}:member_event" for n in range(3)
    ]
    assert {e["name"] for e in events} == {"viewed_product"}
    person2 = client.lists.get_list_member_events(LIST_ID, subscriber_hash("person2@example.com"))
    assert sorted(e["name"] for e in person2["events"]) == sorted(MARKERS)
