"""The ingest API against clients that push at its limits: sizes, encodings, bodies that
stall or stop, and JSON that a strict parser or writer refuses.

Every message is either stored or refused with a reason; nothing takes a whole batch
(or the server) down with it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from sync.ingest.app import create_app
from sync.ingest.group import GroupCommitter
from sync.ingest.inbox import InboxBatch, InboxCommit, InboxWriter
from sync.ingest.settings import KB, IngestSettings
from sync.ingest.validate import ValidMessage, check_message
from sync.store.state import StateStore
from tests.sync.ingest.helpers import WRITE_KEY, LiveServer, inbox_rows, ledger_rows, track

AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _sized(message_id: str, size: int) -> dict[str, Any]:
    """A track call of exactly `size` bytes as compact JSON (the route adds nothing)."""
    message = track(message_id, properties={"pad": ""})
    message["properties"]["pad"] = "x" * (size - len(orjson.dumps(message)))
    assert len(orjson.dumps(message)) == size
    return message


async def test_a_message_of_exactly_32_kb_is_stored_and_one_byte_more_refused(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    body = {"batch": [_sized("at-limit", 32 * KB), _sized("over", 32 * KB + 1)]}

    response = await client.post("/v1/batch", json=body)

    assert response.status_code == 400
    assert [(r["messageId"], r["field"]) for r in response.json()["rejected"]] == [("over", "$")]
    assert [r["message_id"] for r in inbox_rows(store)] == ["at-limit"]


async def test_a_body_of_exactly_500_kb_is_read_and_one_byte_more_refused(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    messages = [track(f"m{i}", properties={"blob": "y" * 30_000}) for i in range(16)]
    body = orjson.dumps({"batch": messages, "pad": ""})
    at_limit = body.replace(b'"pad":""', b'"pad":"' + b"z" * (500 * KB - len(body)) + b'"')
    over = at_limit.replace(b'"pad":"', b'"pad":"z')
    assert (len(at_limit), len(over)) == (500 * KB, 500 * KB + 1)

    refused = await client.post("/v1/batch", content=over)
    accepted = await client.post("/v1/batch", content=at_limit)

    assert refused.status_code == 400
    assert refused.json()["code"] == "batch_too_large"
    assert accepted.status_code == 200
    assert accepted.json()["stored"] == 16


async def test_a_batch_sent_at_that_is_no_timestamp_is_not_copied_into_every_call(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # 400 KB of sentAt copied into 50 small calls stored 20 MB from one 400 KB request.
    body = {"batch": [track(f"m{i}") for i in range(50)], "sentAt": "9" * 400 * KB}
    deep: Any = []
    for _ in range(300):  # once copied, too deep to write: the request answered 500
        deep = [deep]

    long_one = await client.post("/v1/batch", json=body)
    deep_one = await client.post("/v1/batch", json={"batch": [track("d")], "sentAt": deep})
    timestamp = await client.post(
        "/v1/batch", json={"batch": [track("t")], "sentAt": "2026-11-23T10:00:01.123+00:00"}
    )

    assert [long_one.status_code, deep_one.status_code, timestamp.status_code] == [200] * 3
    rows = {r["message_id"]: orjson.loads(r["raw"]) for r in inbox_rows(store)}
    assert len(rows) == 52
    assert [m for m, raw in rows.items() if "sentAt" in raw] == ["t"]
    assert rows["t"]["sentAt"] == "2026-11-23T10:00:01.123+00:00"


async def test_a_message_too_deep_to_store_is_refused_alone(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # orjson reads 1024 levels of nesting but writes only 254: this once answered 500,
    # which Segment libraries retry, so the good message beside it was never stored.
    deep = orjson.dumps(track("deep", properties={"p": 0})).replace(
        b'"p":0', b'"p":' + b"[" * 300 + b"]" * 300
    )
    body = b'{"batch":[' + deep + b"," + orjson.dumps(track("fine")) + b"]}"

    response = await client.post("/v1/batch", content=body)

    assert response.status_code == 400
    [refused] = response.json()["rejected"]
    assert (refused["messageId"], refused["field"]) == ("deep", "$")
    assert "cannot be stored as JSON" in refused["reason"]
    assert [r["message_id"] for r in inbox_rows(store)] == ["fine"]
    assert ledger_rows(store)[0]["payload"]["messageId"] == "deep"  # a summary


async def test_a_lone_surrogate_is_repaired_not_a_reason_to_refuse_the_batch(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    # A browser truncating "🛒" (\ud83d\uded2) keeps half of it; JSON.stringify writes
    # the lone half as an escape. Go's encoding/json reads it as U+FFFD; orjson refused
    # the whole body, and Segment libraries do not retry a 400.
    cut = orjson.dumps(track("cut", properties={"title": "Cart SURROGATE"}))
    cut = cut.replace(b"SURROGATE", b"\\ud83d")
    body = b'{"batch":[' + cut + b"," + orjson.dumps(track("fine")) + b"]}"

    response = await client.post("/v1/batch", content=body)

    assert response.status_code == 200, response.text
    rows = {r["message_id"]: orjson.loads(r["raw"]) for r in inbox_rows(store)}
    assert set(rows) == {"cut", "fine"}
    assert rows["cut"]["properties"]["title"] == "Cart \ufffd"


@pytest.mark.parametrize(
    ("times", "field"),
    [
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        # A device clock at year 9999: the skew takes the corrected time below year 1.
        (
            {"originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
            "timestamp",
        ),
        (
            {"originalTimestamp": "9999-12-31T23:59:59-05:00", "sentAt": "2026-11-23T10:00:00Z"},
            "originalTimestamp",
        ),
    ],
)
async def test_a_timestamp_out_of_range_refuses_that_message_only(
    client: httpx.AsyncClient, store: StateStore, times: dict[str, str], field: str
) -> None:
    # datetime's OverflowError once answered 500: retried by Segment libraries, then dropped.
    odd = {k: v for k, v in track("odd").items() if k != "timestamp"} | times

    response = await client.post("/v1/batch", json={"batch": [odd, track("fine")]})

    assert response.status_code == 400, response.text
    [refused] = response.json()["rejected"]
    assert (refused["messageId"], refused["field"]) == ("odd", field)
    assert "out of range" in refused["reason"]
    assert [r["message_id"] for r in inbox_rows(store)] == ["fine"]


async def test_invalid_utf8_is_repaired_and_broken_json_still_refused(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    latin1 = orjson.dumps(track("latin1", properties={"city": "CITY"})).replace(
        b"CITY", "Zürich".encode("latin-1")
    )
    nan = b'{"batch":[' + orjson.dumps(track("nan")).replace(b'"SKU-1"', b"NaN") + b"]}"

    repaired = await client.post("/v1/batch", content=b'{"batch":[' + latin1 + b"]}")
    refused = await client.post("/v1/batch", content=nan)

    assert repaired.status_code == 200, repaired.text
    assert orjson.loads(inbox_rows(store)[0]["raw"])["properties"]["city"] == "Z\ufffdrich"
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_json"


async def test_every_member_of_a_multi_member_gzip_body_is_read(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    text = orjson.dumps({"batch": [track("m1"), track("m2")]})
    half = len(text) // 2
    body = gzip.compress(text[:half]) + gzip.compress(text[half:])  # as `cat a.gz b.gz`

    response = await client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 200, response.text
    assert [r["message_id"] for r in inbox_rows(store)] == ["m1", "m2"]


async def test_bytes_after_a_gzip_body_are_refused_not_ignored(
    client: httpx.AsyncClient, store: StateStore
) -> None:
    body = gzip.compress(orjson.dumps({"batch": [track("m1")]})) + b'{"batch":[]}'

    response = await client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_gzip"
    assert inbox_rows(store) == []


async def test_a_gzip_bomb_is_refused_without_inflating_it(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b"[" + b" " * 100_000_000 + b"]")  # 100 MB from ~100 KB

    response = await client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"


async def test_a_client_hanging_up_mid_body_gets_a_clean_refusal(
    app: FastAPI, store: StateStore
) -> None:
    # Starlette raises ClientDisconnect from the body stream; unhandled, uvicorn logged it
    # as "Exception in ASGI application" with a traceback for every dropped upload.
    body = orjson.dumps({"batch": [track("m1")]})
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", AUTH.encode()), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/batch",
        "raw_path": b"/v1/batch",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8088),
    }

    await app(scope, receive, send)

    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["code"] == "incomplete_body"
    assert inbox_rows(store) == []


@pytest.fixture
def impatient_server(store: StateStore) -> Iterator[LiveServer]:
    settings = IngestSettings(write_keys=[WRITE_KEY], body_timeout_seconds=0.5)
    with LiveServer(create_app(settings, store)) as live:
        yield live


def test_a_stalled_body_is_answered_408_and_the_connection_closed(
    impatient_server: LiveServer, store: StateStore
) -> None:
    body = orjson.dumps({"batch": [track("m1")]})
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: ingest\r\nAuthorization: {AUTH}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", impatient_server.port), timeout=10) as sock:
        sock.sendall(head.encode() + body[:10])  # then nothing: slowloris
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in answer
    assert time.monotonic() - started < 5
    assert inbox_rows(store) == []


@pytest.mark.postgres
async def test_a_nul_in_a_message_id_is_refused_not_a_503_on_postgres(postgres_url: str) -> None:
    # PostgreSQL text cannot hold NUL: the id, copied into the rejects ledger, failed the
    # whole transaction, so the request was answered 503 (and retried) for ever.
    store = StateStore.open(postgres_url)
    app = create_app(IngestSettings(write_keys=[WRITE_KEY]), store)
    transport = httpx.ASGITransport(app=app)
    fine = f"fine-{time.time_ns()}"
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ingest", auth=(WRITE_KEY, "")
        ) as client:
            body = {"batch": [track("nul\x00id"), track(fine)]}
            response = await client.post("/v1/batch", json=body)
        stored = [r["message_id"] for r in inbox_rows(store)]
    finally:
        store.close()

    assert response.status_code == 400, response.text
    [refused] = response.json()["rejected"]
    assert (refused["messageId"], refused["field"]) == (None, "messageId")
    assert "NUL" in refused["reason"]
    assert fine in stored


async def test_a_request_the_store_refuses_does_not_fail_the_requests_committed_with_it(
    store: StateStore,
) -> None:
    class PickyWriter(InboxWriter):
        def commit_many(self, batches: Sequence[InboxBatch]) -> list[InboxCommit]:
            if any(m.message_id == "poison" for b in batches for m in b.valid):
                raise sa.exc.DataError("INSERT", {}, ValueError("refused by the store"))
            return super().commit_many(batches)

    committer = GroupCommitter(PickyWriter(store))
    now = datetime.now(UTC)

    def valid(message_id: str) -> list[ValidMessage]:
        checked = check_message(
            0, track(message_id), received_at=now, sent_at=None, call_type=None, max_bytes=KB
        )
        assert isinstance(checked, ValidMessage)
        return [checked]

    results = await asyncio.gather(
        *(
            committer.commit(valid(m), [], channel="tracking-api", received_at=now)
            for m in ("before", "poison", "after")
        ),
        return_exceptions=True,
    )

    assert isinstance(results[1], sa.exc.DataError)
    assert [r.stored for r in (results[0], results[2]) if isinstance(r, InboxCommit)] == [1, 1]
    assert [r["message_id"] for r in inbox_rows(store)] == ["before", "after"]
