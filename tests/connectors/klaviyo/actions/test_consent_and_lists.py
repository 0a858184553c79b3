"""subscribe / unsubscribe / add_to_list: consent gate, bodies grouped by list, spec-valid."""

from __future__ import annotations

from typing import Any

from connectors.klaviyo.actions import add_to_list, subscribe, unsubscribe, upsert_profile

from ..testkit import assert_valid, destination, records_of

BASE: dict[str, Any] = {
    "type": "identify",
    "messageId": "s-1",
    "traits": {"email": "ann@example.com", "phone": "+14155552671"},
}


def _actions(raw: dict[str, Any], **overrides: Any) -> list[str]:
    return [r.action for r in records_of(destination(**overrides), raw)]


def test_no_consent_field_means_no_subscription() -> None:
    assert _actions(BASE) == ["upsert_profile"]


def test_consent_true_or_subscribed_subscribes() -> None:
    for value in (True, "subscribed", "TRUE"):
        raw = {**BASE, "traits": {**BASE["traits"], "email_consent": value}}
        assert "subscribe" in _actions(raw)


def test_subscribe_body_by_list_validates() -> None:
    raw = {**BASE, "traits": {**BASE["traits"], "marketing_consent": "subscribed"}}
    [record] = [
        r for r in records_of(destination(list_id="Y6nRLr"), raw) if r.action == "subscribe"
    ]
    body = subscribe.build_batch([record]).body
    assert body == {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {
                "custom_source": "espbridge",
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": {
                                "email": "ann@example.com",
                                "subscriptions": {
                                    "email": {"marketing": {"consent": "SUBSCRIBED"}}
                                },
                            },
                        }
                    ]
                },
            },
            "relationships": {"list": {"data": {"type": "list", "id": "Y6nRLr"}}},
        }
    }
    assert_valid("bulk_subscribe_profiles", body)


def test_old_consent_is_a_historical_import_with_consented_at() -> None:
    raw = {
        **BASE,
        "timestamp": "2025-01-01T00:00:00Z",
        "traits": {**BASE["traits"], "email_consent": True},
    }
    [record] = [
        r
        for r in records_of(destination(consent={"channels": ["email", "sms"]}), raw)
        if r.action == "subscribe"
    ]
    body = subscribe.build_batch([record]).body
    attributes = body["data"]["attributes"]
    assert attributes["historical_import"] is True
    sms = attributes["profiles"]["data"][0]["attributes"]["subscriptions"]["sms"]
    assert sms == {
        "marketing": {"consent": "SUBSCRIBED", "consented_at": "2025-01-01T00:00:00.000Z"}
    }
    assert_valid("bulk_subscribe_profiles", body)


def test_withdrawn_consent_or_unsubscribe_event_always_unsubscribes() -> None:
    raw = {**BASE, "traits": {**BASE["traits"], "email_consent": False}}
    assert "unsubscribe" in _actions(raw)
    traits = {"email": "ann@example.com", "phone": "+14155552671"}
    event = {
        "type": "track",
        "event": "User Unsubscribed",
        "messageId": "u-1",
        "context": {"traits": traits},
    }
    [record] = [r for r in records_of(destination(), event) if r.action == "unsubscribe"]
    body = unsubscribe.build_batch([record]).body
    [profile] = body["data"]["attributes"]["profiles"]["data"]
    assert profile["attributes"] == {
        "email": "ann@example.com",
        "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}},
    }
    assert "relationships" not in body["data"]
    assert_valid("bulk_unsubscribe_profiles", body)


def test_unsubscribe_without_the_configured_channel_withdraws_what_the_profile_has() -> None:
    event = {
        "type": "track",
        "event": "Unsubscribed",
        "messageId": "u-2",
        "context": {"traits": {"phone": "+14155552671"}},
    }
    [record] = [r for r in records_of(destination(), event) if r.action == "unsubscribe"]
    [profile] = unsubscribe.build_batch([record]).body["data"]["attributes"]["profiles"]["data"]
    assert profile["attributes"] == {
        "phone_number": "+14155552671",
        "subscriptions": {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}},
    }


def test_audience_entered_adds_to_the_list_without_touching_consent() -> None:
    event = {
        "type": "track",
        "event": "Audience Entered",
        "messageId": "a-1",
        "userId": "u-1",
        "properties": {"list_id": "L1", "email": "ann@example.com"},
    }
    [record] = [r for r in records_of(destination(), event) if r.action == "add_to_list"]
    body = add_to_list.build_batch([record]).body
    assert body["data"]["relationships"] == {"lists": {"data": [{"type": "list", "id": "L1"}]}}
    assert "subscriptions" not in str(body)
    assert_valid("bulk_import_profiles", body)
    assert upsert_profile.BULK_COLLECTION == "/data/attributes/profiles/data"
