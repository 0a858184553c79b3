"""Against the sandbox with faults on: every valid event lands exactly once, every
invalid one comes back rejected with Klaviyo's reason."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import OutcomeStatus, Record
from connectors.errors import AuthFailed
from connectors.klaviyo import KlaviyoDestination, KlaviyoSettings

from .testkit import message

sandbox = pytest.importorskip("esp_sandbox.server")
context = pytest.importorskip("esp_sandbox.context")

FAULTS = (
    "429@/api/event-bulk-create-jobs*=0.6:1#8,"  # a 429 storm on the bulk endpoint
    "429=0.08,500=0.05,503=0.03,reset_after=0.05,reset_before=0.03,partial=0.3:0.01#4"
)
NOW = datetime.now(UTC).replace(microsecond=0)


def _settings(url: str, **extra: Any) -> KlaviyoSettings:
    return KlaviyoSettings.model_validate(
        {
            "api_key": "pk_sandbox_123456",
            "base_url": url,
            "time_scale": 60,
            "retry": {"max_attempts": 12, "initial_seconds": 0.01, "max_delay_seconds": 0.2},
            "batch": {"job_poll_seconds": 0.02, "bulk_threshold": 20, "events_per_request": 40},
            **extra,
        }
    )


def _track(i: int, when: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed" if i % 2 else "Video Played",
        "messageId": f"m-{i}",
        "userId": f"u-{i % 40}",
        "timestamp": when.isoformat(),
        "context": {"traits": {"email": f"p{i % 40}@example.com"}},
        "properties": {"sku": f"S-{i}", "price": i},
    }


def _inputs() -> list[dict[str, Any]]:
    valid = [_track(i, NOW - timedelta(minutes=i)) for i in range(400)]
    invalid = [_track(1000 + i, NOW + timedelta(days=800)) for i in range(5)]
    order = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "order-1",
        "userId": "u-1",
        "timestamp": NOW.isoformat(),
        "context": {"traits": {"email": "p1@example.com"}},
        "properties": {
            "total": 30,
            "currency": "EUR",
            "products": [{"sku": "A", "price": 10}, {"sku": "B", "price": 20}],
        },
    }
    return [*valid, *invalid, order]


def _identify(message_id: str, user_id: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": user_id,
        "timestamp": NOW.isoformat(),
        "traits": traits,
    }


async def _send(dest: KlaviyoDestination, raws: list[dict[str, Any]]) -> list[Any]:
    outcomes: list[Any] = []
    for raw in raws:
        for record in dest.map(message(raw), None):
            assert isinstance(record, Record)
            await dest.process_record(record)
    outcomes += await dest.drain()
    return outcomes


async def test_every_valid_event_lands_exactly_once_under_faults() -> None:
    with sandbox.SandboxServer(
        context.SandboxConfig(faults=FAULTS, time_scale=60, seed=11)
    ) as server:
        dest = KlaviyoDestination("klaviyo", _settings(server.klaviyo_url))
        raws = _inputs()
        outcomes = await _send(dest, raws)
        # A replay of the same input (e.g. after a crash before the ledger commit).
        outcomes_again = await _send(dest, raws[:50])
        await dest.aclose()
        state = server.state()["klaviyo"]
    stored = Counter(
        e["unique_id"]
        for per in state["events"].values()
        for events in per.values()
        for e in events
    )
    assert stored and max(stored.values()) == 1, "an event was stored twice"
    by_status = {o.key: o for o in outcomes}
    acknowledged = {k for k, o in by_status.items() if o.status is OutcomeStatus.ACKNOWLEDGED}
    rejected = {k: o for k, o in by_status.items() if o.status is OutcomeStatus.REJECTED}
    assert len(by_status) == 400 + 5 + 3
    invalid = {f"m-{1000 + i}" for i in range(5)}
    for key in invalid:
        assert "1 year in the future" in (rejected[key].reason or "")
        assert rejected[key].field == "time"
    injected = {k for k, o in rejected.items() if "Injected sandbox fault" in (o.reason or "")}
    assert set(rejected) == invalid | injected
    assert acknowledged <= set(stored), "an acknowledged event is missing"
    assert not invalid & set(stored)
    # The sandbox may inject a row fault into a resend whose first attempt it had
    # already applied (reset_after): that row is reported rejected yet stored once.
    assert set(stored) - acknowledged <= injected
    assert {"order-1", "order-1:0", "order-1:1"} <= acknowledged | set(rejected)
    for o in outcomes_again:  # replays are deduplicated by unique_id, never stored twice
        if o.key in acknowledged and o.status is not OutcomeStatus.ACKNOWLEDGED:
            assert "Injected sandbox fault" in (o.reason or ""), o.reason


async def test_profiles_consent_and_409_against_the_sandbox() -> None:
    with sandbox.SandboxServer(
        context.SandboxConfig(faults="500=0.05,reset_after=0.05", seed=3, time_scale=60)
    ) as server:
        dest = KlaviyoDestination("klaviyo", _settings(server.klaviyo_url, list_id=None))
        identifies = [
            {
                "type": "identify",
                "messageId": f"i-{i}",
                "userId": f"u-{i}",
                "timestamp": NOW.isoformat(),
                "traits": {
                    "email": f"p{i}@example.com",
                    "first_name": f"P{i}",
                    "email_consent": i % 3 == 0,
                },
            }
            for i in range(30)
        ]
        bad = {
            "type": "identify",
            "messageId": "i-bad",
            "userId": "u-bad",
            "timestamp": NOW.isoformat(),
            "traits": {"email": "not-an-email"},
        }
        outcomes = await _send(dest, [*identifies, bad])
        # Email of one profile plus the phone of another: a 409 on import and on PATCH.
        phone_only = _identify("i-phone", "u-phone", phone="+14155552671")
        both = _identify("i-both", "u-1", email="p1@example.com", phone="+14155552671", plan="pro")
        [first] = await _send(dest, [phone_only])
        later = await _send(dest, [both])
        await dest.aclose()
        state = server.state()["klaviyo"]
    statuses = {o.key: o for o in outcomes}
    assert statuses["profile:i-bad"].status is OutcomeStatus.REJECTED
    assert statuses["profile:i-bad"].reason
    assert (
        sum(
            o.status is OutcomeStatus.ACKNOWLEDGED
            for k, o in statuses.items()
            if k.startswith("profile:i-")
        )
        == 30
    )
    emails = Counter(p["email"] for p in state["profiles"] if p["email"])
    assert max(emails.values()) == 1, "a duplicate profile was created"
    assert len(emails) == 30
    subscribed = sum(
        1
        for k, o in statuses.items()
        if k.startswith("subscribe:") and o.status is OutcomeStatus.ACKNOWLEDGED
    )
    unsubscribed = sum(1 for k in statuses if k.startswith("unsubscribe:"))
    assert (subscribed, unsubscribed) == (10, 20)
    [outcome] = later
    assert outcome.status is OutcomeStatus.ACKNOWLEDGED
    assert outcome.learned_ids == first.learned_ids  # the profile Klaviyo named on the 409
    assert "identifiers left unchanged" in (outcome.reason or "")
    assert len(state["profiles"]) == 31  # 30 + the phone-only one: no duplicate created


async def test_check_and_add_to_list_against_the_sandbox() -> None:
    with sandbox.SandboxServer(context.SandboxConfig(seed=5, time_scale=60)) as server:
        list_id = _create_list(server.klaviyo_url, "VIPs")
        dest = KlaviyoDestination("klaviyo", _settings(server.klaviyo_url))
        assert "revision 2026-07-15" in await dest.check()
        entered = {
            "type": "track",
            "event": "Audience Entered",
            "messageId": "aud-1",
            "userId": "u-7",
            "timestamp": NOW.isoformat(),
            "properties": {"list_id": list_id, "email": "vip@example.com"},
        }
        outcomes = await _send(dest, [entered])
        await dest.aclose()
        bad = KlaviyoDestination("bad", _settings(server.klaviyo_url, api_key="nope"))
        with pytest.raises(AuthFailed):
            await bad.check()
        await bad.aclose()
        state = server.state()["klaviyo"]
    statuses = {o.key: o.status for o in outcomes}
    assert statuses == {
        "aud-1": OutcomeStatus.ACKNOWLEDGED,
        "list:aud-1": OutcomeStatus.ACKNOWLEDGED,
    }
    [vip] = [p for p in state["profiles"] if p["email"] == "vip@example.com"]
    [members] = [k for k in state["lists"] if k["id"] == list_id]
    assert vip["id"] in str(members)
    assert not state["subscriptions"].get(vip["id"])  # joining a list changed no consent


def _create_list(url: str, name: str) -> str:
    headers = {"authorization": "Klaviyo-API-Key pk_sandbox_123456", "revision": "2026-07-15"}
    body = {"data": {"type": "list", "attributes": {"name": name}}}
    response = httpx.post(f"{url}/api/lists", json=body, headers=headers)
    response.raise_for_status()
    return str(response.json()["data"]["id"])


async def test_unset_on_null_clears_first_name_and_a_property_in_klaviyo() -> None:
    with sandbox.SandboxServer(context.SandboxConfig(seed=7, time_scale=60)) as server:
        settings = _settings(server.klaviyo_url, unset_on_null=["first_name", "plan"])
        dest = KlaviyoDestination("klaviyo", settings)
        await _send(dest, [_identify("i-1", "u-1", email="ann@example.com", first_name="Ann")])
        await _send(dest, [_identify("i-2", "u-1", email="ann@example.com", plan="pro")])
        outcomes = await _send(
            dest, [_identify("i-3", "u-1", email="ann@example.com", first_name=None, plan=None)]
        )
        await dest.aclose()
        [ann] = server.state()["klaviyo"]["profiles"]
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED]
    assert ann["attributes"].get("first_name") is None
    assert "plan" not in ann["properties"]


async def test_a_numeric_zip_code_reaches_klaviyo_as_text() -> None:
    # Warehouses often type postal codes as integers; Klaviyo's location.zip is a string.
    with sandbox.SandboxServer(context.SandboxConfig(seed=8, time_scale=60)) as server:
        dest = KlaviyoDestination("klaviyo", _settings(server.klaviyo_url))
        address = {"city": "San Francisco", "postal_code": 94107}
        outcomes = await _send(
            dest, [_identify("i-1", "u-1", email="a@example.com", address=address)]
        )
        await dest.aclose()
        [profile] = server.state()["klaviyo"]["profiles"]
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKNOWLEDGED]
    assert profile["attributes"]["location"]["zip"] == "94107"
