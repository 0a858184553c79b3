"""A refused credential stops every request in flight; a batch that never finishes is not lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine

import httpx
import pytest

from connectors.base import OutcomeStatus
from connectors.errors import AuthFailed, JobUnfinished
from connectors.mailchimp import MailchimpDestination
from connectors.mailchimp.actions.batch_operations import BatchTimeout
from connectors.mailchimp.hashing import subscriber_hash
from tests.connectors.mailchimp.mc_testkit import identify, ok, problem, run, settings, track

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def _refusing(refused: str, requests: list[str], finished: list[str]) -> Handler:
    """401 for `refused`'s PUT; slow answers for `slow…` members; 503 for the rest."""
    refused_hash = subscriber_hash(refused)

    async def answer(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith(refused_hash):
            return problem(401, "API Key Invalid", "Your API key may be invalid.")
        if any(
            request.url.path.endswith(subscriber_hash(f"slow{i}@example.com")) for i in range(9)
        ):
            await asyncio.sleep(2.0)
            finished.append(request.url.path)
            return ok(request)
        return httpx.Response(503)

    return answer


def _destination(answer: Handler, **batch: object) -> MailchimpDestination:
    s = settings(
        retry={"initial_seconds": 0.1, "max_delay_seconds": 1.0, "max_attempts": 6},
        batch={"max_age_seconds": 60, **batch},
    )
    return MailchimpDestination("mc", s, transport=httpx.MockTransport(answer))


async def test_a_401_cancels_the_other_requests_of_the_flush() -> None:
    requests: list[str] = []
    finished: list[str] = []
    dest = _destination(_refusing("bad@example.com", requests, finished))
    messages = [identify("bad@example.com", "m-0")]
    messages += [identify(f"p{i}@example.com", f"m-{i + 1}") for i in range(3)]  # retrying
    messages += [identify(f"slow{i}@example.com", f"m-s{i}") for i in range(2)]  # slow
    started = time.monotonic()
    with pytest.raises(AuthFailed, match="401"):
        await run(dest, *messages)
    assert time.monotonic() - started < 1.0
    sent = len(requests)
    await asyncio.sleep(0.8)  # a sibling left running would retry after 0.1 s, 0.2 s, 0.4 s
    assert len(requests) == sent == 6  # each member's PUT once, none retried afterwards
    assert finished == []
    await dest.aclose()


async def test_a_failed_batch_cancels_the_batches_still_in_flight() -> None:
    requests: list[str] = []
    finished: list[str] = []
    dest = _destination(_refusing("bad@example.com", requests, finished), max_records=2)
    messages = [
        identify("bad@example.com", "m-0"),  # first batch: refused
        identify("slow0@example.com", "m-1"),
        identify("slow1@example.com", "m-2"),  # second batch, in flight meanwhile
        identify("slow2@example.com", "m-3"),
    ]
    started = time.monotonic()
    with pytest.raises(AuthFailed, match="401"):
        await run(dest, *messages)
    assert time.monotonic() - started < 1.0  # not after the slow batch's 2 s
    await asyncio.sleep(0.1)
    assert finished == []
    await dest.aclose()


async def test_a_batch_that_never_finishes_is_sent_directly_not_lost() -> None:
    assert issubclass(BatchTimeout, JobUnfinished)  # were it to escape: exit 3, not 1

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batches"):
            return httpx.Response(200, json={"id": "b-1", "status": "pending"})
        if "/batches/" in request.url.path:
            return httpx.Response(200, json={"id": "b-1", "status": "started"})
        return ok(request)

    dest = _destination(
        answer, operations_threshold=2, poll_seconds=0.01, batch_timeout_seconds=0.05
    )
    _, outcomes = await run(
        dest, identify("a@example.com", "m-1"), track("a@example.com", "Viewed", "m-2")
    )
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    assert len(outcomes) == 2
    await dest.aclose()
