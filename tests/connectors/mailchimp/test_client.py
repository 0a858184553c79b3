"""Client: auth, data center, retries and classification, the 10-connection cap."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from connectors.base import OutcomeStatus
from connectors.errors import AuthFailed
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.client import ConnectionSlots, MailchimpClient
from tests.connectors.mailchimp.fake_mailchimp import FakeMailchimp
from tests.connectors.mailchimp.mc_testkit import API_KEY, identify, problem, run, settings, track


async def test_basic_auth_with_the_key_and_data_center_from_its_suffix() -> None:
    fake = FakeMailchimp()
    s = settings(base_url=None, api_key=API_KEY.replace("-us1", "-us19"))
    client = MailchimpClient(s, httpx.MockTransport(fake))
    await client.request("GET", "/ping")
    [request] = fake.requests
    assert str(request.url) == "https://us19.api.mailchimp.com/3.0/ping"
    user, _, key = base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
    assert key == API_KEY.replace("-us1", "-us19") and user
    await client.aclose()


async def test_oauth_sends_a_bearer_token_to_the_configured_dc() -> None:
    fake = FakeMailchimp()
    s = settings(api_key=None, oauth_token="tok-1", dc="us7", base_url=None)
    client = MailchimpClient(s, httpx.MockTransport(fake))
    await client.request("GET", "/ping")
    assert fake.requests[0].headers["Authorization"] == "Bearer tok-1"
    assert fake.requests[0].url.host == "us7.api.mailchimp.com"
    await client.aclose()


@pytest.mark.parametrize(
    "throttle",
    [
        httpx.Response(429, json={"title": "Too Many Requests", "detail": "slow down"}),
        problem(403, "Forbidden", "You have exceeded the limit of 10 simultaneous connections."),
        problem(503, "Service Unavailable", "try later"),
    ],
)
async def test_throttling_and_server_errors_are_retried(throttle: httpx.Response) -> None:
    fake = FakeMailchimp()
    fake.fault("PUT", "", throttle)
    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(fake))
    _, [outcome] = await run(dest, identify("a@example.com"))
    assert outcome.status == OutcomeStatus.ACKNOWLEDGED
    assert [r.method for r in fake.requests] == ["PUT", "PUT"]
    await dest.aclose()


async def test_a_refusing_403_stops_the_run() -> None:
    fake = FakeMailchimp()
    fake.fault("PUT", "", problem(403, "Forbidden", "User does not have access"))
    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(fake))
    with pytest.raises(AuthFailed, match="does not have access"):
        await run(dest, identify("a@example.com"))
    await dest.aclose()


@pytest.mark.parametrize(
    ("title", "detail"),
    [
        (
            "Member In Compliance State",
            "a@example.com is in a compliance state due to unsubscribe, bounce, or compliance "
            "review and cannot be subscribed.",
        ),
        (
            "Forgotten Email Not Subscribed",
            "a@example.com was permanently deleted and cannot be re-imported.",
        ),
        ("Invalid Resource", "a@example.com looks fake or invalid, please enter a real email"),
    ],
)
async def test_member_refusals_are_rejected_outcomes_never_retried(title: str, detail: str) -> None:
    fake = FakeMailchimp()
    fake.fault("PUT", "", problem(400, title, detail))
    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(fake))
    _, [outcome] = await run(dest, identify("a@example.com"))
    assert outcome.status == OutcomeStatus.REJECTED
    assert outcome.reason == f"{title}: {detail}"
    assert len(fake.requests) == 1
    await dest.aclose()


async def test_field_errors_name_the_field() -> None:
    fake = FakeMailchimp()
    body = problem(
        400,
        "Invalid Resource",
        "Your merge fields were invalid.",
        errors=[{"field": "BIRTHDAY", "message": "Please enter a valid date"}],
    )
    fake.fault("PUT", "", body)
    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(fake))
    _, [outcome] = await run(dest, identify("a@example.com"))
    assert outcome.field == "BIRTHDAY"
    assert "BIRTHDAY: Please enter a valid date" in (outcome.reason or "")
    await dest.aclose()


async def test_at_most_10_connections_per_key_across_destinations() -> None:
    fake = FakeMailchimp(delay=0.02)
    transport = httpx.MockTransport(fake)
    destinations = [
        MailchimpDestination(f"mc{i}", settings(), transport=transport) for i in range(3)
    ]
    messages = [track(f"p{i}@example.com", "Viewed", message_id=f"e{i}") for i in range(40)]
    results = await asyncio.gather(*(run(d, *messages) for d in destinations))
    assert all(len(outcomes) == 40 for _, outcomes in results)
    assert fake.peak == 10
    for dest in destinations:
        await dest.aclose()


async def test_slots_are_shared_across_event_loops_in_threads() -> None:
    slots = ConnectionSlots(2)
    peak = 0

    async def work() -> None:
        nonlocal peak
        await slots.acquire()
        peak = max(peak, slots.in_use)
        await asyncio.sleep(0.01)
        slots.release()

    def thread_main() -> None:
        async def many() -> None:
            await asyncio.gather(*(work() for _ in range(5)))

        asyncio.run(many())

    await asyncio.gather(asyncio.to_thread(thread_main), *(work() for _ in range(5)))
    assert peak <= 2 and slots.in_use == 0


async def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    slots = ConnectionSlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    slots.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(slots.acquire(), 1)
    slots.release()
    assert slots.in_use == 0


async def test_check_pings_and_names_the_audience() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ping"):
            return httpx.Response(200, json={"health_status": "Everything's Chimpy!"})
        return httpx.Response(200, json={"id": "a1b2c3d4e5", "name": "Main"})

    dest = MailchimpDestination("mc", settings(), transport=httpx.MockTransport(answer))
    assert await dest.check() == "Mailchimp us1: Everything's Chimpy!; audience 'Main'"
    await dest.aclose()
