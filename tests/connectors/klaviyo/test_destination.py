"""KlaviyoDestination end to end on a MockTransport: routing, batching, retries, rejects."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from connectors.base import Customer, Destination, OutcomeStatus, Record
from connectors.errors import AuthFailed

from .testkit import FakeKlaviyo, destination, records_of

FAST: dict[str, Any] = {"retry": {"initial_seconds": 0.001, "max_delay_seconds": 0.01}}


def _event(i: int, email: str | None = None, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{i}",
        "userId": f"u-{i % 50}",
        "timestamp": "2026-07-20T10:00:00Z",
        "context": {"traits": {"email": email or f"p{i % 50}@example.com"}},
        "properties": {"sku": f"S-{i}", **props},
    }


def _sent_unique_ids(fake: FakeKlaviyo) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _method, path, body in fake.requests:
        if path == "/api/events":
            seen[body["data"]["attributes"]["unique_id"]] += 1
        elif path == "/api/event-bulk-create-jobs":
            for entry in body["data"]["attributes"]["events-bulk-create"]["data"]:
                for event in entry["attributes"]["events"]["data"]:
                    seen[event["attributes"]["unique_id"]] += 1
    return seen


async def _run(dest: Any, raws: list[dict[str, Any]]) -> list[Any]:
    for raw in raws:
        for record in records_of(dest, raw):
            await dest.process_record(record)
    outcomes: list[Any] = await dest.drain()
    await dest.aclose()
    return outcomes


def test_it_is_a_destination() -> None:
    assert isinstance(destination(), Destination)


async def test_a_lone_event_goes_to_the_single_endpoint_with_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    outcomes = await _run(destination(FakeKlaviyo(answer)), [_event(1)])
    assert [(o.key, o.status) for o in outcomes] == [("m-1", OutcomeStatus.ACKNOWLEDGED)]
    [request] = seen
    assert request.url.path == "/api/events"
    assert request.headers["authorization"] == "Klaviyo-API-Key pk_test_0123456789"
    assert request.headers["revision"] == "2026-07-15"
    assert request.headers["content-type"] == "application/vnd.api+json"


async def test_volume_uses_bulk_and_single_and_sends_each_event_once() -> None:
    fake = FakeKlaviyo()
    outcomes = await _run(destination(fake), [_event(i) for i in range(2500)])
    assert len(outcomes) == 2500 and {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    paths = Counter(fake.paths())
    assert paths["POST /api/event-bulk-create-jobs"] >= 2
    ids = _sent_unique_ids(fake)
    assert len(ids) == 2500 and set(ids.values()) == {1}
    for _method, path, body in fake.requests:
        if path == "/api/event-bulk-create-jobs":
            entries = body["data"]["attributes"]["events-bulk-create"]["data"]
            assert sum(len(e["attributes"]["events"]["data"]) for e in entries) <= 1000


async def test_bulk_requests_stay_under_5_mb() -> None:
    fake = FakeKlaviyo()
    blob = "x" * 20_000
    await _run(
        destination(fake, batch={"single_concurrency": 1}),
        [_event(i, blob=blob) for i in range(600)],
    )
    sizes = [
        len(httpx.Request("POST", "http://x", json=b).content)
        for _, p, b in fake.requests
        if p.endswith("jobs")
    ]
    assert sizes and max(sizes) <= 5_000_000
    assert len(_sent_unique_ids(fake)) == 600


async def test_repeated_keys_in_one_batch_are_sent_once_and_both_acknowledged() -> None:
    fake = FakeKlaviyo()
    outcomes = await _run(destination(fake), [_event(1)] * 30 + [_event(2)] * 30)
    assert len(outcomes) == 60 and {o.status for o in outcomes} == {OutcomeStatus.ACKNOWLEDGED}
    assert sum(_sent_unique_ids(fake).values()) == 2


async def test_partial_bulk_failure_rejects_the_bad_row_and_resends_the_rest() -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path != "/api/event-bulk-create-jobs":
            return httpx.Response(202)
        calls["n"] += 1
        if calls["n"] > 1:
            return httpx.Response(202)
        pointer = (
            "/data/attributes/events-bulk-create/data/1/attributes/events/data/0/attributes/time"
        )
        return httpx.Response(
            400,
            json={
                "errors": [
                    {
                        "id": "e",
                        "code": "invalid",
                        "title": "Invalid input.",
                        "detail": "time is too far in the future",
                        "source": {"pointer": pointer},
                    }
                ]
            },
        )

    fake = FakeKlaviyo(answer)
    raws = [_event(i, email=f"only{i}@example.com") for i in range(40)]
    outcomes = await _run(
        destination(fake, batch={"single_concurrency": 1, "bulk_concurrency": 1}), raws
    )
    rejected = [o for o in outcomes if o.status is OutcomeStatus.REJECTED]
    assert [(o.key, o.reason, o.field) for o in rejected] == [
        ("m-1", "time is too far in the future", "time")
    ]
    assert sum(o.status is OutcomeStatus.ACKNOWLEDGED for o in outcomes) == 39
    resent = fake.requests[-1][2]["data"]["attributes"]["events-bulk-create"]["data"]
    assert len(resent) == 39


@pytest.mark.parametrize("fault", ["429", "503", "reset"])
async def test_transient_failures_are_retried(fault: str) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            if fault == "reset":
                raise httpx.ReadError("connection reset", request=request)
            return httpx.Response(int(fault), headers={"Retry-After": "0"})
        return httpx.Response(202)

    outcomes = await _run(destination(FakeKlaviyo(answer), **FAST), [_event(1)])
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED]
    assert calls["n"] == 2


async def test_other_4xx_is_rejected_with_klaviyo_detail_and_not_retried() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "errors": [
                    {
                        "id": "1",
                        "code": "invalid",
                        "title": "Invalid",
                        "detail": "Invalid email address",
                        "source": {"pointer": "/data/attributes/profile/data/attributes/email"},
                    }
                ]
            },
        )

    fake = FakeKlaviyo(answer)
    [outcome] = await _run(destination(fake, **FAST), [_event(1)])
    assert outcome.status is OutcomeStatus.REJECTED
    assert (outcome.reason, outcome.field) == (
        "Invalid email address",
        "profile.data.attributes.email",
    )
    assert len(fake.requests) == 1


IDENTIFY = {
    "type": "identify",
    "messageId": "i-1",
    "userId": "u-1",
    "traits": {"email": "ann@example.com", "plan": "pro"},
}


async def test_409_duplicate_profile_patches_and_reports_the_learned_id() -> None:
    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path == "/api/profile-import":
            return httpx.Response(
                409,
                json={
                    "errors": [
                        {
                            "id": "x",
                            "status": 409,
                            "code": "duplicate_profile",
                            "title": "Conflict.",
                            "detail": "A profile already exists with one of these identifiers.",
                            "source": {"pointer": "/data/attributes"},
                            "links": {},
                            "meta": {"duplicate_profile_id": "01DUP"},
                        }
                    ]
                },
            )
        return httpx.Response(200, json={"data": {"type": "profile", "id": "01DUP"}})

    fake = FakeKlaviyo(answer)
    [outcome] = await _run(destination(fake), [IDENTIFY])
    assert outcome.status is OutcomeStatus.ACKNOWLEDGED
    assert outcome.learned_ids == {"klaviyo_profile_id": "01DUP"}
    assert fake.paths() == ["POST /api/profile-import", "PATCH /api/profiles/01DUP"]
    assert fake.requests[1][2]["data"]["id"] == "01DUP"


async def test_profile_import_reports_the_created_id() -> None:
    fake = FakeKlaviyo(
        lambda r, b: httpx.Response(201, json={"data": {"type": "profile", "id": "01NEW"}})
    )
    [outcome] = await _run(destination(fake), [IDENTIFY])
    assert outcome.learned_ids == {"klaviyo_profile_id": "01NEW"}


async def test_bulk_import_is_polled_and_import_errors_become_rejects() -> None:
    polls = {"n": 0}

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        path = request.url.path
        if path == "/api/profile-bulk-import-jobs":
            return httpx.Response(
                202,
                json={
                    "data": {
                        "type": "profile-bulk-import-job",
                        "id": "job-1",
                        "attributes": {"status": "queued"},
                    }
                },
            )
        if path == "/api/profile-bulk-import-jobs/job-1":
            polls["n"] += 1
            status = "complete" if polls["n"] > 1 else "processing"
            return httpx.Response(
                200,
                json={
                    "data": {
                        "type": "profile-bulk-import-job",
                        "id": "job-1",
                        "attributes": {"status": status, "failed_count": 1},
                    }
                },
            )
        if path == "/api/profile-bulk-import-jobs/job-1/import-errors":
            if "page[cursor]" not in request.url.params:
                error = {
                    "type": "import-error",
                    "id": "e1",
                    "attributes": {
                        "code": "invalid",
                        "title": "Invalid",
                        "detail": "Invalid phone number",
                        "source": {
                            "pointer": "/data/attributes/profiles/data/3/attributes/phone_number"
                        },
                    },
                }
                return httpx.Response(
                    200,
                    json={
                        "data": [error],
                        "links": {"self": "x", "next": "https://k/api/x?page%5Bcursor%5D=abc"},
                    },
                )
            return httpx.Response(200, json={"data": [], "links": {"self": "x"}})
        return httpx.Response(404)

    fake = FakeKlaviyo(answer)
    raws = [
        {
            **IDENTIFY,
            "messageId": f"i-{i}",
            "userId": f"u-{i}",
            "traits": {"email": f"p{i}@example.com"},
        }
        for i in range(30)
    ]
    outcomes = await _run(destination(fake, batch={"job_poll_seconds": 0.001}), raws)
    rejected = [(o.key, o.reason, o.field) for o in outcomes if o.status is OutcomeStatus.REJECTED]
    assert rejected == [("profile:i-3", "Invalid phone number", "phone_number")]
    assert len(outcomes) == 30
    assert fake.paths().count("GET /api/profile-bulk-import-jobs/job-1/import-errors") == 2


async def test_oauth_refreshes_once_on_401() -> None:
    tokens: list[str] = []

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "fresh", "token_type": "Bearer"})
        tokens.append(request.headers["authorization"])
        return httpx.Response(401 if tokens[-1] == "Bearer stale" else 202, json={"errors": []})

    oauth = {
        "token_url": "https://klaviyo.test/oauth/token",
        "client_id": "cid",
        "client_secret": "s",
        "refresh_token": "r",
        "access_token": "stale",
    }
    outcomes = await _run(destination(FakeKlaviyo(answer), api_key=None, oauth=oauth), [_event(1)])
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED]
    assert tokens == ["Bearer stale", "Bearer fresh"]


async def test_check_describes_the_account_or_raises_auth_failed() -> None:
    account = {
        "data": [
            {
                "type": "account",
                "id": "AbC123",
                "attributes": {"contact_information": {"organization_name": "Acme"}},
            }
        ]
    }
    ok = destination(FakeKlaviyo(lambda r, b: httpx.Response(200, json=account)))
    assert "Acme (AbC123)" in await ok.check()
    bad = destination(
        FakeKlaviyo(
            lambda r, b: httpx.Response(
                401, json={"errors": [{"detail": "Incorrect authentication credentials."}]}
            )
        )
    )
    with pytest.raises(AuthFailed):
        await bad.check()
    await ok.aclose()
    await bad.aclose()


async def test_unsubscribe_is_sent_after_subscribe_in_the_same_drain() -> None:
    fake = FakeKlaviyo()
    traits = {"email": "ann@example.com"}
    raws = [
        {
            "type": "identify",
            "messageId": "a",
            "userId": "u",
            "traits": {**traits, "email_consent": True},
        },
        {
            "type": "identify",
            "messageId": "b",
            "userId": "u",
            "traits": {**traits, "email_consent": False},
        },
    ]
    await _run(destination(fake, actions=["subscribe", "unsubscribe"]), raws)
    assert fake.paths() == [
        "POST /api/profile-subscription-bulk-create-jobs",
        "POST /api/profile-subscription-bulk-delete-jobs",
    ]


async def test_stale_queue_is_flushed_on_the_next_record() -> None:
    fake = FakeKlaviyo()
    dest = destination(fake, batch={"max_age_seconds": 0.01})
    await dest.process_record(records_of(dest, _event(1))[0])
    assert fake.paths() == []
    await asyncio.sleep(0.02)
    await dest.process_record(records_of(dest, _event(2))[0])
    assert fake.paths() == ["POST /api/events", "POST /api/events"]
    outcomes = await dest.drain()
    assert sorted(o.key for o in outcomes) == ["m-1", "m-2"]
    await dest.aclose()


def test_records_carry_deterministic_keys() -> None:
    records = records_of(destination(), _event(5))
    assert isinstance(records[0], Record) and records[0].key == "m-5"


async def test_identifiers_split_over_two_profiles_update_the_named_one_without_them() -> None:
    conflict = {
        "errors": [
            {
                "code": "duplicate_profile",
                "detail": "A profile already exists.",
                "meta": {"duplicate_profile_id": "01B"},
            }
        ]
    }
    other = {
        "errors": [
            {
                "code": "duplicate_profile",
                "detail": "exists",
                "meta": {"duplicate_profile_id": "01A"},
            }
        ]
    }

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, json=conflict)
        if "email" in body["data"]["attributes"]:
            return httpx.Response(409, json=other)
        return httpx.Response(200, json={"data": {"type": "profile", "id": "01B"}})

    fake = FakeKlaviyo(answer)
    [outcome] = await _run(destination(fake), [IDENTIFY])
    assert outcome.status is OutcomeStatus.ACKNOWLEDGED
    assert outcome.learned_ids == {"klaviyo_profile_id": "01B"}
    assert outcome.reason == "identifiers left unchanged: they also belong to Klaviyo profile 01A"
    assert fake.requests[-1][2]["data"]["attributes"] == {"properties": {"plan": "pro"}}


async def test_a_409_naming_another_profile_updates_the_customer_s_own_one() -> None:
    # After an alias renamed u-0 to u-1, Klaviyo already had a profile (01B) with the new
    # external id from another device. The traits went to 01B, the profile without the
    # email, and its id was learned as a second one for the customer (an identity conflict).
    conflict = {"errors": [{"code": "duplicate_profile", "meta": {"duplicate_profile_id": "01B"}}]}

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, json=conflict)
        return httpx.Response(200, json={"data": {"type": "profile", "id": "01A"}})

    fake = FakeKlaviyo(answer)
    dest = destination(fake)
    ann = Customer("cus_1", {"user_id": ["u-1"], "klaviyo_profile_id": ["01A"]})
    [record] = records_of(dest, IDENTIFY, ann)
    await dest.process_record(record)
    [outcome] = await dest.drain()
    await dest.aclose()

    assert fake.paths() == ["POST /api/profile-import", "PATCH /api/profiles/01A"]
    assert fake.requests[0][2]["data"]["id"] == "01A"
    assert fake.requests[1][2]["data"]["attributes"] == {"properties": {"plan": "pro"}}
    assert outcome.status is OutcomeStatus.ACKNOWLEDGED
    assert outcome.learned_ids == {"klaviyo_profile_id": "01A"}
    assert outcome.reason == "identifiers left unchanged: they also belong to Klaviyo profile 01B"


async def test_ratelimit_remaining_zero_pauses_until_reset_when_someone_else_spent_it() -> None:
    stamps: list[float] = []

    def answer(request: httpx.Request, body: Any) -> httpx.Response:
        stamps.append(time.monotonic())
        return httpx.Response(202, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "1"})

    # time_scale 20: the steady window is 3 s, so the pause is Reset's full 1 s.
    dest = destination(FakeKlaviyo(answer), api_key="pk_ratelimit_1", time_scale=20)
    for i in (1, 2):
        await dest.process_record(records_of(dest, _event(i))[0])
        await dest.drain()
    await dest.aclose()
    assert stamps[1] - stamps[0] >= 0.9
