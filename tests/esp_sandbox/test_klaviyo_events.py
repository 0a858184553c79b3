"""Event ingestion semantics: dedup, default unique_id, bulk rules, limits, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from esp_sandbox.klaviyo.spec import shared_spec
from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import event_body, klaviyo_client

BULK_PREFIX = "/data/attributes/events-bulk-create/data"

needs_spec = pytest.mark.skipif(
    not shared_spec().available, reason="the official Klaviyo spec (../shared) is absent"
)


def _events(server: SandboxServer) -> list[dict[str, Any]]:
    state = server.state()["klaviyo"]
    return [e for per_metric in state["events"].values() for es in per_metric.values() for e in es]


def _bulk(groups: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {
                "events-bulk-create": {
                    "data": [
                        {
                            "type": "event-bulk-create",
                            "attributes": {
                                "profile": {"data": {"type": "profile", "attributes": profile}},
                                "events": {
                                    "data": [{"type": "event", "attributes": e} for e in events]
                                },
                            },
                        }
                        for profile, events in groups
                    ]
                }
            },
        }
    }


def _bulk_event(metric: str = "Viewed", **attrs: Any) -> dict[str, Any]:
    return {
        "properties": attrs.pop("properties", {}),
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        **attrs,
    }


def _post(server: SandboxServer, path: str, body: dict[str, Any]) -> httpx.Response:
    with klaviyo_client(server) as client:
        return client.post(path, json=body)


def _pointers(response: httpx.Response) -> list[str]:
    return [e["source"]["pointer"] for e in response.json()["errors"]]


def test_event_is_recorded_with_profile_and_fields(server: SandboxServer) -> None:
    body = event_body(
        unique_id="m-1",
        time="2026-03-01T10:00:00.750Z",
        properties={"sku": "A1"},
        external_id="u-1",
    )
    body["data"]["attributes"].update(value=9.5, value_currency="USD", backfill=True)
    assert _post(server, "/api/events", body).status_code == 202
    state = server.state()["klaviyo"]
    (profile,) = state["profiles"]
    assert (profile["email"], profile["external_id"]) == ("ann@example.com", "u-1")
    (event,) = state["events"][profile["id"]]["Viewed Product"]
    assert event["unique_id"] == "m-1"
    assert event["time"] == "2026-03-01T10:00:00+00:00"  # truncated to the second
    assert (event["value"], event["value_currency"], event["backfill"]) == (9.5, "USD", True)
    assert event["properties"] == {"sku": "A1"}


def test_repeated_unique_id_is_dropped_silently(server: SandboxServer) -> None:
    body = event_body(unique_id="dup-1")
    assert _post(server, "/api/events", body).status_code == 202
    assert _post(server, "/api/events", body).status_code == 202
    other_metric = event_body(metric="Other", unique_id="dup-1")
    assert _post(server, "/api/events", other_metric).status_code == 202
    assert len(_events(server)) == 2
    assert server.state()["klaviyo"]["dropped_duplicate_events"] == 1


def test_default_unique_id_is_time_to_the_second(server: SandboxServer) -> None:
    same_second = ["2026-03-01T10:00:00.100Z", "2026-03-01T10:00:00.900Z"]
    for stamp in [*same_second, "2026-03-01T10:00:01Z"]:
        assert _post(server, "/api/events", event_body(time=stamp)).status_code == 202
    events = _events(server)
    assert [e["unique_id"] for e in events] == [
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T10:00:01+00:00",
    ]
    assert all(e["unique_id_defaulted"] for e in events)


def test_identifier_resolution_across_email_phone_and_anonymous_id(server: SandboxServer) -> None:
    _post(server, "/api/events", event_body(email="a@example.com", phone_number="+15005550006"))
    _post(server, "/api/events", event_body(email=None, phone_number="+15005550006", unique_id="2"))
    _post(server, "/api/events", event_body(email=None, anonymous_id="anon-1", unique_id="3"))
    _post(
        server,
        "/api/events",
        event_body(email="a@example.com", anonymous_id="anon-2", unique_id="4"),
    )
    profiles = server.state()["klaviyo"]["profiles"]
    assert len(profiles) == 2
    known = next(p for p in profiles if p["email"] == "a@example.com")
    assert known["anonymous_ids"] == ["anon-2"]
    assert len(_events(server)) == 4


@pytest.mark.parametrize(
    ("field", "value", "pointer"),
    [
        ("time", "1989-12-31T23:59:59Z", "/data/attributes/time"),
        ("time", "IN_400_DAYS", "/data/attributes/time"),
        ("time", "yesterday", "/data/attributes/time"),
    ],
)
def test_event_time_bounds(server: SandboxServer, field: str, value: str, pointer: str) -> None:
    if value == "IN_400_DAYS":
        value = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    response = _post(server, "/api/events", event_body(**{field: value}))
    assert response.status_code == 400
    assert pointer in _pointers(response)
    assert _events(server) == []


def test_limits_on_properties_metric_name_and_string_size(server: SandboxServer) -> None:
    many = event_body(properties={f"p{i}": i for i in range(401)})
    assert _pointers(_post(server, "/api/events", many)) == ["/data/attributes/properties"]
    assert (
        _post(
            server, "/api/events", event_body(properties={f"p{i}": i for i in range(400)})
        ).status_code
        == 202
    )
    long_name = event_body(metric="x" * 128)
    assert _pointers(_post(server, "/api/events", long_name)) == [
        "/data/attributes/metric/data/attributes/name"
    ]
    assert (
        _post(server, "/api/events", event_body(metric="x" * 127, unique_id="n")).status_code == 202
    )
    big = event_body(properties={"blob": "y" * (100 * 1024 + 1)})
    assert _pointers(_post(server, "/api/events", big)) == ["/data/attributes/properties/blob"]


def test_payload_over_5mb_is_413(server: SandboxServer) -> None:
    props = {f"k{i}": "z" * 60_000 for i in range(90)}
    response = _post(server, "/api/events", event_body(properties=props))
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("attrs", "pointer"),
    [
        ({"email": "not-an-email"}, "/data/attributes/profile/data/attributes/email"),
        (
            {"email": None, "phone_number": "5005550006"},
            "/data/attributes/profile/data/attributes/phone_number",
        ),
        (
            {"email": None, "phone_number": "+1 555"},
            "/data/attributes/profile/data/attributes/phone_number",
        ),
        ({"email": None}, "/data/attributes/profile/data/attributes"),
    ],
)
def test_bad_identifiers_are_400_with_pointer(
    server: SandboxServer, attrs: dict[str, Any], pointer: str
) -> None:
    body = event_body(**attrs)
    response = _post(server, "/api/events", body)
    assert response.status_code == 400
    assert _pointers(response) == [pointer]


@needs_spec
def test_schema_violation_points_at_field(server: SandboxServer) -> None:
    body = event_body()
    body["data"]["attributes"]["metric"] = {"name": "legacy shape"}
    response = _post(server, "/api/events", body)
    assert response.status_code == 400
    assert _pointers(response) == ["/data/attributes/metric/data"]
    assert response.json()["errors"][0]["code"] == "invalid"


def test_bulk_events_are_recorded_per_profile(server: SandboxServer) -> None:
    body = _bulk(
        [
            ({"email": "a@example.com"}, [_bulk_event(unique_id="1"), _bulk_event(unique_id="2")]),
            ({"external_id": "u-9"}, [_bulk_event("Placed Order", unique_id="1", value=3)]),
        ]
    )
    assert _post(server, "/api/event-bulk-create-jobs/", body).status_code == 202
    events = _events(server)
    assert sorted((e["metric"], e["unique_id"], e["via"]) for e in events) == [
        ("Placed Order", "1", "bulk_create_events"),
        ("Viewed", "1", "bulk_create_events"),
        ("Viewed", "2", "bulk_create_events"),
    ]


def test_bulk_repeated_unique_id_fails_the_whole_request(server: SandboxServer) -> None:
    body = _bulk(
        [
            ({"email": "a@example.com"}, [_bulk_event(unique_id="1")]),
            ({"email": "b@example.com"}, [_bulk_event(unique_id="1")]),
            ({"email": "A@example.com"}, [_bulk_event(unique_id="x"), _bulk_event(unique_id="1")]),
        ]
    )
    response = _post(server, "/api/event-bulk-create-jobs", body)
    assert response.status_code == 400
    assert _pointers(response) == [f"{BULK_PREFIX}/2/attributes/events/data/1/attributes/unique_id"]
    assert _events(server) == []
    assert server.state()["klaviyo"]["profiles"] == []


def test_bulk_later_duplicate_of_earlier_request_is_dropped_silently(server: SandboxServer) -> None:
    body = _bulk([({"email": "a@example.com"}, [_bulk_event(unique_id="1")])])
    assert _post(server, "/api/event-bulk-create-jobs", body).status_code == 202
    assert _post(server, "/api/event-bulk-create-jobs", body).status_code == 202
    assert len(_events(server)) == 1


def test_bulk_over_1000_events_is_rejected(server: SandboxServer) -> None:
    events = [_bulk_event(unique_id=str(i)) for i in range(1001)]
    response = _post(
        server, "/api/event-bulk-create-jobs", _bulk([({"email": "a@example.com"}, events)])
    )
    assert response.status_code == 400
    assert "at most 1000" in response.json()["errors"][0]["detail"]
    ok = _bulk([({"email": "a@example.com"}, events[:1000])])
    assert _post(server, "/api/event-bulk-create-jobs", ok).status_code == 202


def test_bulk_bad_item_points_into_the_batch(server: SandboxServer) -> None:
    body = _bulk(
        [
            ({"email": "a@example.com"}, [_bulk_event()]),
            ({"email": "bad"}, [_bulk_event()]),
            ({"email": "c@example.com"}, [_bulk_event(), _bulk_event(time="1980-01-01T00:00:00Z")]),
        ]
    )
    response = _post(server, "/api/event-bulk-create-jobs", body)
    assert response.status_code == 400
    assert _pointers(response) == [
        f"{BULK_PREFIX}/1/attributes/profile/data/attributes/email",
        f"{BULK_PREFIX}/2/attributes/events/data/1/attributes/time",
    ]
    assert _events(server) == []
