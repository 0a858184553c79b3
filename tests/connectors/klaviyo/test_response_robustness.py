"""Klaviyo answers as they come in the wild: redirects, proxy pages, cut-short bodies, 413s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tenacity import RetryCallState

from connectors.base import OutcomeStatus
from connectors.errors import AuthFailed, MalformedResponse, RateLimited, Redirected
from connectors.http import RetryPolicy, retry_after_seconds

from .testkit import FakeKlaviyo, destination, records_of

FAST: dict[str, Any] = {
    "retry": {"initial_seconds": 0.001, "max_delay_seconds": 0.01},
    "batch": {"job_poll_seconds": 0.001},
}


def _event(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{i}",
        "userId": f"u-{i}",
        "context": {"traits": {"email": f"p{i}@example.com"}},
        "properties": {"sku": f"S-{i}"},
    }


def _identify(i: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"i-{i}",
        "userId": f"u-{i}",
        "traits": {"email": f"p{i}@example.com", "first_name": "Ann"},
    }


async def _run(dest: Any, raws: list[dict[str, Any]]) -> list[Any]:
    try:
        for raw in raws:
            for record in records_of(dest, raw):
                await dest.process_record(record)
        outcomes: list[Any] = await dest.drain()
    finally:
        await dest.aclose()
    return outcomes


@pytest.mark.parametrize("status", [301, 307])
async def test_a_redirect_stops_the_run_and_acknowledges_nothing(status: int) -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(status, headers={"Location": "https://elsewhere.test/api/events"})

    dest = destination(FakeKlaviyo(answer), **FAST)
    with pytest.raises(Redirected, match="check base_url") as caught:
        await _run(dest, [_event(1)])
    assert isinstance(caught.value, AuthFailed)  # the engine stops the run with exit 3


async def test_a_413_on_a_bulk_request_is_split_not_rejected() -> None:
    sizes: list[int] = []

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path != "/api/event-bulk-create-jobs":
            return httpx.Response(202)
        entries = body["data"]["attributes"]["events-bulk-create"]["data"]
        count = sum(len(e["attributes"]["events"]["data"]) for e in entries)
        sizes.append(count)
        if count > 5:  # a proxy in front of Klaviyo with a smaller body limit
            page = "<html><title>413 Request Entity Too Large</title></html>"
            return httpx.Response(413, text=page, headers={"content-type": "text/html"})
        return httpx.Response(202)

    dest = destination(
        FakeKlaviyo(answer),
        batch={"bulk_threshold": 2, "single_concurrency": 1, "bulk_concurrency": 1},
        retry=FAST["retry"],
    )
    outcomes = await _run(dest, [_event(i) for i in range(20)])
    assert len(outcomes) == 20
    assert {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    assert max(sizes) > 5 and min(sizes) <= 5


def _bulk_profiles(answer_job: Any) -> Any:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path == "/api/profile-bulk-import-jobs" and request.method == "POST":
            return answer_job()
        return httpx.Response(202, json={"data": {"id": "j1", "attributes": {}}})

    return answer


@pytest.mark.parametrize(
    "job",
    [
        lambda: httpx.Response(202, content=b""),
        lambda: httpx.Response(202, content=b'{"data": {"type": "profile-bulk-imp'),
        lambda: httpx.Response(202, json={"data": []}),
        lambda: httpx.Response(202, json={"data": {"type": "profile-bulk-import-job"}}),
        lambda: httpx.Response(200, text="<html>OK</html>"),
    ],
    ids=["empty", "truncated", "data-list", "no-id", "html"],
)
async def test_an_unreadable_bulk_job_answer_acknowledges_nothing(job: Any) -> None:
    dest = destination(FakeKlaviyo(_bulk_profiles(job)), **FAST)
    with pytest.raises(MalformedResponse, match=r"no job id|not JSON|not a JSON object"):
        await _run(dest, [_identify(i) for i in range(60)])


async def test_an_unreadable_job_poll_acknowledges_nothing() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                202, json={"data": {"id": "j1", "attributes": {"status": "queued"}}}
            )
        return httpx.Response(200, content=b'{"data": {"id": "j1", "attr')

    dest = destination(FakeKlaviyo(answer), **FAST)
    with pytest.raises(MalformedResponse, match="bulk import job j1"):
        await _run(dest, [_identify(i) for i in range(60)])


async def test_an_oauth_refresh_without_a_token_is_an_auth_failure() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if "token" in request.url.path:
            return httpx.Response(200, json={"token_type": "Bearer"})
        return httpx.Response(202)

    dest = destination(
        FakeKlaviyo(answer),
        api_key=None,
        oauth={"client_id": "c", "client_secret": "s", "refresh_token": "r"},
        **FAST,
    )
    with pytest.raises(AuthFailed, match="without an access_token"):
        await _run(dest, [_event(1)])


async def test_a_profile_import_200_with_an_odd_body_is_still_acknowledged() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(200, content=b'{"data": ["unexpected"]}')

    outcomes = await _run(destination(FakeKlaviyo(answer), **FAST), [_identify(1)])
    assert [(o.status, o.learned_ids) for o in outcomes] == [(OutcomeStatus.ACKNOWLEDGED, {})]


async def test_a_proxys_html_413_for_one_event_is_a_reject_with_a_readable_reason() -> None:
    page = (
        "<html><head><title>413 Request Entity Too Large</title></head>"
        "<body><center><h1>413 Request Entity Too Large</h1></center><hr>nginx</body></html>"
    )

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(413, text=page, headers={"content-type": "text/html"})

    [outcome] = await _run(destination(FakeKlaviyo(answer), **FAST), [_event(1)])
    assert outcome.status == OutcomeStatus.REJECTED
    assert outcome.reason == "413 Request Entity Too Large"


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # a date in the past: go now
        ("-5", 0.0, 0.0),
        ("7200", 7200.0, 7200.0),
        ("abc", None, None),
    ],
)
def test_retry_after_is_read_in_every_form(
    header: str, low: float | None, high: float | None
) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    seconds = retry_after_seconds(response)
    if low is None:
        assert seconds is None
    else:
        assert seconds is not None and low <= seconds <= (high or 0.0)


def test_a_future_http_date_is_honoured_and_hours_are_capped() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    seconds = retry_after_seconds(httpx.Response(429, headers={"Retry-After": later}))
    assert seconds is not None and 15 <= seconds <= 21
    policy = RetryPolicy(max_delay=30.0)
    state = RetryCallState(None, None, (), {})
    state.set_exception((RateLimited, RateLimited("429", 3 * 3600.0), None))
    assert policy.wait(state) == 30.0


@pytest.mark.parametrize(
    "page",
    [b'{"data": [{"type": "import-error", "attr', b'{"data": {"id": "e1"}}', b"[]"],
    ids=["truncated", "data-object", "not-object"],
)
async def test_unreadable_import_errors_acknowledge_nothing(page: bytes) -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path.endswith("/import-errors"):
            return httpx.Response(200, content=page)
        job = {"id": "j1", "attributes": {"status": "complete", "failed_count": 1}}
        return httpx.Response(202, json={"data": job})

    dest = destination(FakeKlaviyo(answer), **FAST)
    with pytest.raises(MalformedResponse, match="import-errors of job j1"):
        await _run(dest, [_identify(i) for i in range(60)])
