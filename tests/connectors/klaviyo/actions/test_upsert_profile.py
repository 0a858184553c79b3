"""upsert_profile: attributes, no null overwrites, unset, bulk body, import errors, 409 id."""

from __future__ import annotations

from connectors.base import Customer
from connectors.klaviyo.actions import upsert_profile
from mapping.types import RejectedRow

from ..testkit import assert_valid, destination, message, records_of

IDENTIFY = {
    "type": "identify",
    "messageId": "id-1",
    "userId": "u-1",
    "anonymousId": "anon-1",
    "traits": {
        "email": "ann@example.com",
        "phone": "+44 20 7946 0958",
        "firstName": "Ann",
        "last_name": None,
        "plan": "pro",
        "nickname": None,
        "address": {"city": "London", "country": "GB"},
    },
}


def test_identify_becomes_a_profile_import_without_nulls_or_anonymous_id() -> None:
    [record] = records_of(destination(), IDENTIFY)
    body = upsert_profile.build_request(record).body
    assert record.key == "profile:id-1"
    assert body == {
        "data": {
            "type": "profile",
            "attributes": {
                "email": "ann@example.com",
                "phone_number": "+442079460958",
                "external_id": "u-1",
                "first_name": "Ann",
                "location": {"city": "London", "country": "GB"},
                "properties": {"plan": "pro"},
            },
        }
    }
    assert_valid("create_or_update_profile", body)


def test_unset_on_null_clears_only_listed_properties() -> None:
    [record] = records_of(destination(unset_on_null=["nickname", "plan"]), IDENTIFY)
    body = upsert_profile.build_request(record).body
    assert body["data"]["meta"] == {"patch_properties": {"unset": ["nickname"]}}
    assert_valid("create_or_update_profile", body)


def test_patch_after_409_targets_the_duplicate_and_validates() -> None:
    [record] = records_of(destination(), IDENTIFY)
    request = upsert_profile.build_update(record, "01DUP")
    assert request.path_params == {"id": "01DUP"}
    assert request.body["data"]["id"] == "01DUP"
    assert_valid("update_profile", request.body)
    body = {
        "errors": [
            {
                "code": "duplicate_profile",
                "detail": "exists",
                "meta": {"duplicate_profile_id": "01DUP"},
            }
        ]
    }
    assert upsert_profile.duplicate_profile_id(body) == "01DUP"


def test_known_profile_id_from_identity_is_sent() -> None:
    customer = Customer("c", {"klaviyo_profile_id": ["01KNOWN"]})
    [record] = records_of(destination(), IDENTIFY, customer)
    assert upsert_profile.build_request(record).body["data"]["id"] == "01KNOWN"


def test_bulk_import_body_and_import_errors_map_to_rows() -> None:
    records = [
        records_of(
            destination(),
            {**IDENTIFY, "messageId": f"m{i}", "traits": {"email": f"p{i}@example.com"}},
        )[0]
        for i in range(3)
    ]
    body = upsert_profile.build_batch(records).body
    assert len(body["data"]["attributes"]["profiles"]["data"]) == 3
    assert_valid("bulk_import_profiles", body)
    errors = [
        {
            "type": "import-error",
            "attributes": {
                "code": "invalid",
                "title": "Invalid",
                "detail": "bad phone",
                "source": {"pointer": "/data/attributes/profiles/data/1/attributes/phone_number"},
            },
        },
        {
            "type": "import-error",
            "attributes": {
                "code": "invalid",
                "title": "Invalid",
                "detail": "bad email",
                "source": {"pointer": ""},
                "original_payload": {"email": "p2@example.com"},
            },
        },
    ]
    rows = upsert_profile.rows_from_import_errors(errors, records)
    assert [(r.index, r.detail, r.field) for r in rows] == [
        (1, "bad phone", "phone_number"),
        (2, "bad email", None),
    ]


def test_identify_without_identifiers_is_rejected() -> None:
    [reject] = destination().map(
        message({"type": "identify", "anonymousId": "a", "traits": {"plan": "x"}}), None
    )
    assert isinstance(reject, RejectedRow) and reject.field == "profile"
