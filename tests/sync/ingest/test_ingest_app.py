"""The ingest API as a Segment library and Segment's webhook see it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
from datetime import datetime

import httpx
import orjson

from sync.ingest.metrics import IngestMetrics
from sync.store.state import StateStore
from tests.sync.ingest.helpers import (
    WEBHOOK_SECRET,
    WRITE_KEY,
    inbox_rows,
    ledger_rows,
    track,
)


async def test_batch_is_stored_in_order_and_answered_after_commit(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    body = {
        "batch": [track("m1"), track("m2", "Order Completed")],
        "sentAt": "2026-11-23T10:00:01Z",
    }

    response = await client.post("/v1/batch", json=body)

    assert response.status_code == 200
    assert response.json() == {"success": True, "stored": 2, "duplicates": 0}
    rows = inbox_rows(store)
    assert [r["message_id"] for r in rows] == ["m1", "m2"]
    stored = orjson.loads(rows[1]["raw"])
    assert stored["event"] == "Order Completed"
    assert stored["sentAt"] == "2026-11-23T10:00:01Z"
    assert stored["receivedAt"].endswith("Z")


async def test_duplicate_message_ids_are_accepted_and_stored_once(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    first = await client.post("/v1/batch", json={"batch": [track("m1"), track("m1")]})
    again = await client.post("/v1/batch", json={"batch": [track("m1", "Changed"), track("m2")]})

    assert first.json() == {"success": True, "stored": 1, "duplicates": 1}
    assert again.json() == {"success": True, "stored": 1, "duplicates": 1}
    rows = inbox_rows(store)
    assert [r["message_id"] for r in rows] == ["m1", "m2"]
    assert orjson.loads(rows[0]["raw"])["event"] == "Product Viewed"  # the first copy wins


async def test_single_calls_take_their_type_from_the_route(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    identify = {"messageId": "i1", "userId": "u1", "traits": {"email": "a@example.com"}}
    alias = {"messageId": "a1", "userId": "u1", "previousId": "anon-1"}

    assert (await client.post("/v1/identify", json=identify)).status_code == 200
    assert (await client.post("/v1/alias", json=alias)).status_code == 200
    assert (await client.post("/v1/page", json={"messageId": "p1", "anonymousId": "x"})).is_success

    kinds = [orjson.loads(r["raw"])["type"] for r in inbox_rows(store)]
    assert kinds == ["identify", "alias", "page"]


async def test_write_key_in_the_body_works_and_is_never_stored(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    call = {**track("m1"), "writeKey": WRITE_KEY}

    response = await client.post("/v1/track", json=call, auth=None)

    assert response.status_code == 200
    assert WRITE_KEY not in inbox_rows(store)[0]["raw"]


async def test_unknown_or_missing_write_key_is_401_and_nothing_is_stored(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    wrong = await client.post("/v1/batch", json={"batch": [track("m1")]}, auth=("nope", ""))
    missing = await client.post("/v1/batch", json={"batch": [track("m1")]}, auth=None)
    wrong_in_body = await client.post(
        "/v1/track", json={**track("m2"), "writeKey": "no"}, auth=None
    )

    assert [wrong.status_code, missing.status_code, wrong_in_body.status_code] == [401, 401, 401]
    assert missing.json()["code"] == "unauthorized"
    assert "write key" in missing.json()["message"]
    assert inbox_rows(store) == []


async def test_a_batch_may_carry_its_write_keys_per_message(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # Some clients put `writeKey` in each message instead of the header or the batch (and
    # Segment accepts it): such a batch was answered 401, and its events were lost.
    keyed = [{**track(m), "writeKey": WRITE_KEY} for m in ("m1", "m4")]
    batch = [keyed[0], track("m2"), {**track("m3"), "writeKey": "wrong"}, keyed[1]]

    response = await client.post("/v1/batch", json={"batch": batch}, auth=None)

    assert response.status_code == 400
    answer = response.json()
    assert answer["stored"] == 2
    assert [(r["index"], r["messageId"], r["field"]) for r in answer["rejected"]] == [
        (1, "m2", "writeKey"),
        (2, "m3", "writeKey"),
    ]
    assert [r["message_id"] for r in inbox_rows(store)] == ["m1", "m4"]
    assert [r["field"] for r in ledger_rows(store)] == ["writeKey", "writeKey"]
    stored = str(inbox_rows(store)) + str(ledger_rows(store))
    assert WRITE_KEY not in stored and "wrong" not in stored


async def test_a_batch_without_any_valid_key_is_401_and_nothing_is_kept(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    batch = [track("m1"), {**track("m2"), "writeKey": "wrong"}]

    response = await client.post("/v1/batch", json={"batch": batch}, auth=None)

    assert response.status_code == 401
    assert inbox_rows(store) == [] and ledger_rows(store) == []


async def test_a_write_key_given_as_the_basic_password_is_accepted(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # `curl -u :KEY` (empty username): answered 401 before.
    ok = await client.post("/v1/batch", json={"batch": [track("m1")]}, auth=("", WRITE_KEY))
    wrong = await client.post("/v1/batch", json={"batch": [track("m2")]}, auth=("", "nope"))

    assert [ok.status_code, wrong.status_code] == [200, 401]
    assert [r["message_id"] for r in inbox_rows(store)] == ["m1"]


async def test_message_without_id_is_refused_by_index_and_the_rest_stored(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    no_id = track("x")
    del no_id["messageId"]
    body = {"batch": [track("m1"), no_id, track("m3", event="")]}

    response = await client.post("/v1/batch", json=body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_messages"
    assert answer["stored"] == 1
    assert "batch[1].messageId: missing" in answer["message"]
    assert [(r["index"], r["field"]) for r in answer["rejected"]] == [
        (1, "messageId"),
        (2, "event"),
    ]
    assert [r["message_id"] for r in inbox_rows(store)] == ["m1"]
    ledger = ledger_rows(store)
    assert [(r["sync"], r["field"], r["source_ref"]) for r in ledger] == [
        ("ingest", "messageId", "tracking-api:batch[1]"),
        ("ingest", "event", "tracking-api:m3"),
    ]
    assert "needs an event name" in ledger[1]["reason"]
    assert ledger[1]["payload"]["messageId"] == "m3"


async def test_a_blank_message_id_is_refused_like_a_missing_one(
    client: httpx.AsyncClient, store: StateStore, metrics: IngestMetrics
) -> None:
    # "   " was stored, and the next message with the same blank id was answered as its
    # duplicate and never stored: a different event lost without a word.
    blank = [track("   "), track("   ", event="Other"), track("\t"), track("\u200b")]
    body = {"batch": [*blank, track("m5")]}

    response = await client.post("/v1/batch", json=body)

    assert response.status_code == 400
    answer = response.json()
    assert (answer["stored"], answer["duplicates"]) == (1, 0)
    assert [(r["index"], r["messageId"], r["field"]) for r in answer["rejected"]] == [
        (i, None, "messageId") for i in range(4)
    ]
    assert all(r["reason"].startswith("blank") for r in answer["rejected"])
    assert "batch[0].messageId: blank" in answer["message"]
    assert [r["message_id"] for r in inbox_rows(store)] == ["m5"]
    assert [(r["field"], r["source_ref"]) for r in ledger_rows(store)] == [
        ("messageId", f"tracking-api:batch[{i}]") for i in range(4)
    ]
    text = (await client.get("/metrics")).text
    assert 'espbridge_ingest_rejected_total{channel="tracking-api",field="messageId"} 4.0' in text


async def test_invalid_json_is_a_segment_style_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/batch", content=b'{"batch": [', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "not valid JSON" in response.json()["message"]


async def test_batch_over_500_kb_is_refused_whole(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    messages = [track(f"m{i}", properties={"blob": "x" * 20_000}) for i in range(30)]

    response = await client.post("/v1/batch", json={"batch": messages})

    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert inbox_rows(store) == []


async def test_message_over_32_kb_is_refused_and_summarised(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    big = track("big", properties={"blob": "x" * 40_000})

    response = await client.post("/v1/batch", json={"batch": [track("m1"), big]})

    assert response.status_code == 400
    refused = response.json()["rejected"][0]
    assert refused["messageId"] == "big"
    assert "at most 32768 bytes" in refused["reason"]
    assert [r["message_id"] for r in inbox_rows(store)] == ["m1"]
    payload = ledger_rows(store)[0]["payload"]
    assert payload["messageId"] == "big"
    assert payload["bytes"] > 32 * 1024
    assert "blob" not in payload  # a summary, not the oversized message


async def test_gzip_bodies_are_accepted(client: httpx.AsyncClient, store: StateStore) -> None:
    body = gzip.compress(json.dumps({"batch": [track("m1")]}).encode())

    response = await client.post(
        "/v1/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert len(inbox_rows(store)) == 1


async def test_missing_timestamp_defaults_to_received_at(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    call = track("m1")
    del call["timestamp"]

    assert (await client.post("/v1/track", json=call)).status_code == 200
    stored = orjson.loads(inbox_rows(store)[0]["raw"])
    assert stored["timestamp"] == stored["receivedAt"]


async def test_clock_skew_is_corrected_from_original_timestamp(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    call = track("m1")
    del call["timestamp"]
    # The device clock is one hour ahead: sentAt - originalTimestamp is 2 s.
    call |= {"originalTimestamp": "2026-11-23T11:00:00Z", "sentAt": "2026-11-23T11:00:02Z"}

    assert (await client.post("/v1/track", json=call)).status_code == 200
    stored = orjson.loads(inbox_rows(store)[0]["raw"])
    timestamp = datetime.fromisoformat(stored["timestamp"])
    received = datetime.fromisoformat(stored["receivedAt"])
    assert round((received - timestamp).total_seconds()) == 2


def _sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


async def test_signed_webhook_is_stored(client: httpx.AsyncClient, store: StateStore) -> None:
    body = json.dumps(track("w1")).encode()

    response = await client.post(
        "/v1/webhook", content=body, headers={"X-Signature": _sign(body)}, auth=None
    )

    assert response.status_code == 200
    assert inbox_rows(store)[0]["channel"] == "webhook"


async def test_unsigned_or_wrongly_signed_webhook_is_401_and_not_stored(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    body = json.dumps(track("w1")).encode()

    unsigned = await client.post("/v1/webhook", content=body, auth=None)
    wrong = await client.post(
        "/v1/webhook", content=body, headers={"X-Signature": _sign(body, "other")}, auth=None
    )
    tampered = await client.post(
        "/v1/webhook",
        content=body.replace(b"SKU-1", b"SKU-2"),
        headers={"X-Signature": _sign(body)},
        auth=None,
    )

    assert [unsigned.status_code, wrong.status_code, tampered.status_code] == [401, 401, 401]
    assert inbox_rows(store) == []


async def test_first_event_signature_of_a_batch_is_refused_by_default(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    events = [track("w1"), track("w2")]
    first = json.dumps(events[0], separators=(",", ":")).encode()

    response = await client.post(
        "/v1/webhook", content=json.dumps(events).encode(), headers={"X-Signature": _sign(first)}
    )

    assert response.status_code == 401
    assert inbox_rows(store) == []


async def test_health_and_metrics(client: httpx.AsyncClient, metrics: IngestMetrics) -> None:
    await client.post("/v1/batch", json={"batch": [track("m1"), track("m1"), {"type": "track"}]})

    health = await client.get("/healthz")
    text = (await client.get("/metrics")).text

    assert health.json() == {"status": "ok", "inbox_max_id": 1}
    assert 'espbridge_ingest_received_total{channel="tracking-api"} 3.0' in text
    assert 'espbridge_ingest_stored_total{channel="tracking-api"} 1.0' in text
    assert 'espbridge_ingest_duplicates_total{channel="tracking-api"} 1.0' in text
    assert 'espbridge_ingest_rejected_total{channel="tracking-api",field="messageId"} 1.0' in text
    assert 'espbridge_ingest_requests_total{route="/v1/batch",status="400"} 1.0' in text


async def test_openapi_documents_request_and_response_models(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    batch = document["paths"]["/v1/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }
    assert set(batch["responses"]) == {"200", "400", "401", "408", "503"}
    schemas = document["components"]["schemas"]
    assert {"TrackMessage", "TrackCall", "WebhookBody", "SegmentError", "Accepted"} <= set(schemas)
    assert schemas["TrackMessage"]["required"] == ["messageId", "event", "type"]


async def test_analytics_js_routes_and_cors(client: httpx.AsyncClient, store: StateStore) -> None:
    # Analytics.js posts `<apiHost>/t` (text/plain, writeKey in the body) and `<apiHost>/b`.
    origin = {"Origin": "https://shop.example.com"}
    single = {**track("t1"), "writeKey": WRITE_KEY}
    del single["type"]
    batched = {"writeKey": WRITE_KEY, "batch": [track("b1")]}

    one = await client.post(
        "/v1/t",
        content=json.dumps(single),
        headers={**origin, "Content-Type": "text/plain"},
        auth=None,
    )
    many = await client.post("/v1/b", json=batched, headers=origin, auth=None)

    assert (one.status_code, many.status_code) == (200, 200)
    assert one.headers["access-control-allow-origin"] == "*"
    rows = inbox_rows(store)
    assert [(r["message_id"], orjson.loads(r["raw"])["type"]) for r in rows] == [
        ("t1", "track"),
        ("b1", "track"),
    ]


async def test_concurrent_requests_are_committed_together_and_counted_right(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # 40 requests at once; each shares one messageId with the next, so 39 are duplicates.
    bodies = [{"batch": [track(f"own-{n}"), track(f"shared-{n // 2}")]} for n in range(40)]

    responses = await asyncio.gather(*(client.post("/v1/batch", json=b) for b in bodies))

    answers = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert sum(a["stored"] for a in answers) == 40 + 20
    assert sum(a["duplicates"] for a in answers) == 20
    assert len(inbox_rows(store)) == 60


async def test_batch_context_and_integrations_apply_to_every_call(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    own = {**track("m2"), "context": {"ip": "10.0.0.2", "traits": {"first_name": "Ann"}}}
    body = {
        "batch": [track("m1"), own],
        "context": {"ip": "10.0.0.1", "library": {"name": "analytics-go", "version": "3.3"}},
        "integrations": {"Klaviyo": False},
    }

    response = await client.post("/v1/batch", json=body)

    assert response.status_code == 200, response.text
    first, second = (orjson.loads(r["raw"]) for r in inbox_rows(store))
    assert first["context"] == body["context"]
    assert first["integrations"] == {"Klaviyo": False}
    # The call's own keys win; the batch's fill in the rest.
    assert second["context"] == {
        "ip": "10.0.0.2",
        "traits": {"first_name": "Ann"},
        "library": {"name": "analytics-go", "version": "3.3"},
    }
