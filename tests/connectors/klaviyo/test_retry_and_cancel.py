"""Retry waits under a tiny Retry-After, and a fatal error stopping its sibling requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from tenacity import RetryCallState

from connectors.errors import AuthFailed, RateLimited, ServerError
from connectors.http import RetryPolicy, gather_or_cancel
from connectors.klaviyo import KlaviyoDestination

from .testkit import NOW, FakeKlaviyo, destination, records_of, settings


def _state(attempt: int, error: BaseException) -> RetryCallState:
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


# Retry-After: 0 ---------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [0.0, 0.001])
def test_a_tiny_retry_after_never_waits_less_than_the_backoff_floor(retry_after: float) -> None:
    policy = RetryPolicy(initial=0.5, max_delay=3.0)
    waits = [policy.wait(_state(n, RateLimited("429", retry_after))) for n in range(1, 6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]  # the floor doubles, capped at max_delay


def test_a_long_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=0.5, max_delay=30.0)
    assert policy.wait(_state(1, RateLimited("429", 7.0))) == 7.0
    assert policy.wait(_state(1, RateLimited("429", 3600.0))) == 30.0


def test_a_retry_after_is_not_stretched_on_later_attempts() -> None:
    # Klaviyo's `Retry-After: 1` on a fourth 429 in a row means one second, not the
    # backoff's four: waiting longer only slowed a throttled sync (bench ratio 0.92-0.95).
    policy = RetryPolicy(initial=0.5, max_delay=30.0)
    assert [policy.wait(_state(n, RateLimited("429", 1.0))) for n in range(1, 6)] == [1.0] * 5


async def test_a_throttled_klaviyo_saying_retry_after_0_does_not_burn_the_attempts() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"})

    fake = FakeKlaviyo(answer)
    dest = destination(fake, retry={"initial_seconds": 0.05, "max_attempts": 4})
    [record] = records_of(dest, _event(1))
    started = time.monotonic()
    await dest.process_record(record)
    with pytest.raises(RateLimited):
        await dest.drain()
    await dest.aclose()
    assert len(fake.requests) == 4
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # the backoff, not milliseconds


# A fatal error cancels its siblings ---------------------------------------------------


def _event(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{i}",
        "userId": f"u-{i}",
        "timestamp": "2026-07-20T10:00:00Z",
        "context": {"traits": {"email": f"p{i}@example.com"}},
        "properties": {"sku": f"S-{i}"},
    }


def _identify(i: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"i-{i}",
        "userId": f"u-{i}",
        "timestamp": "2026-07-20T10:00:00Z",
        "traits": {"email": f"p{i}@example.com", "first_name": "Ann"},
    }


async def test_a_401_stops_the_other_requests_instead_of_letting_them_retry() -> None:
    requests: list[str] = []
    finished: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path == "/api/profile-import":
            await asyncio.sleep(2.0)  # slow: must be cancelled, not waited for
            finished.append("profile")
            return httpx.Response(201, json={"data": {"id": "01P"}})
        if b'"m-0"' in request.content:
            return httpx.Response(401, json={"errors": [{"detail": "bad key"}]})
        return httpx.Response(503)  # the other events keep being retried

    dest = KlaviyoDestination(
        "klaviyo",
        settings(retry={"initial_seconds": 0.1, "max_attempts": 6}),
        transport=httpx.MockTransport(answer),  # an async handler: requests can be slow
        clock=lambda: NOW,
    )
    for raw in [*(_event(i) for i in range(5)), *(_identify(i) for i in range(3))]:
        for record in records_of(dest, raw):
            await dest.process_record(record)
    started = time.monotonic()
    with pytest.raises(AuthFailed, match="401"):
        await dest.drain()
    assert time.monotonic() - started < 1.0
    sent = len(requests)
    await asyncio.sleep(0.8)  # a sibling left running would retry (0.1 s, 0.2 s, 0.4 s …)
    assert len(requests) == sent == 8  # each request once, no retries afterwards
    assert finished == []
    await dest.aclose()


async def test_gather_or_cancel_keeps_order_and_raises_the_error_itself() -> None:
    async def late(value: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return value

    assert await gather_or_cancel([late(1, 0.02), late(2, 0.0), late(3, 0.01)]) == [1, 2, 3]
    assert await gather_or_cancel([]) == []

    cancelled: list[int] = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def fails() -> int:
        await asyncio.sleep(0.01)
        raise ServerError("503 from /api/events (after 6 attempts)", 503)

    with pytest.raises(ServerError, match="after 6 attempts") as caught:
        await gather_or_cancel([slow(1), fails(), slow(2)])
    assert sorted(cancelled) == [1, 2]
    assert caught.value.__context__ is None  # not wrapped in, or chained to, a group
