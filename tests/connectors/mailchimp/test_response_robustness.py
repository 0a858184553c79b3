"""Mailchimp answers as they come in the wild: redirects, cut-short bodies, broken archives."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.base import OutcomeStatus
from connectors.errors import AuthFailed, MalformedResponse, Redirected
from connectors.mailchimp import MailchimpDestination
from tests.connectors.mailchimp.fake_mailchimp import FakeMailchimp
from tests.connectors.mailchimp.mc_testkit import Recorder, identify, run, settings, track

Answer = Callable[[httpx.Request], httpx.Response]


def _dest(answer: Answer | FakeMailchimp, **overrides: Any) -> MailchimpDestination:
    handler: Any = answer if isinstance(answer, FakeMailchimp) else Recorder(answer)
    return MailchimpDestination("mc", settings(**overrides), transport=httpx.MockTransport(handler))


async def _outcomes(dest: MailchimpDestination, *messages: Any) -> dict[str, OutcomeStatus]:
    try:
        _, outcomes = await asyncio.wait_for(run(dest, *messages), timeout=10)
    finally:
        await dest.aclose()
    return {o.key: o.status for o in outcomes}


@pytest.mark.parametrize("status", [301, 307])
async def test_a_redirect_is_never_counted_as_delivered(status: int) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": "https://us2.api.mailchimp.com/3.0/"})

    with pytest.raises(Redirected, match="check base_url") as caught:
        await _outcomes(_dest(answer), identify("a@example.com"))
    assert isinstance(caught.value, AuthFailed)  # the engine stops the run with exit 3


async def test_a_put_accepted_with_a_cut_short_body_is_acknowledged() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"id": "8d3b7e4a', headers={"content-type": "json"})

    status = await _outcomes(_dest(answer), identify("a@example.com"))
    assert status == {"m-1:upsert_member": OutcomeStatus.ACKNOWLEDGED}


async def test_a_batch_subscribe_with_an_unreadable_answer_falls_back_to_puts() -> None:
    puts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # batch subscribe, cut short by a proxy
            return httpx.Response(200, content=b'{"new_members": [{"id": "a', headers={})
        puts.append(request.url.path)
        return httpx.Response(200, json={"id": "x"})

    messages = [identify(f"p{i}@example.com", message_id=f"i{i}") for i in range(20)]
    status = await _outcomes(_dest(answer, batch={"batch_subscribe_min": 2}), *messages)
    assert set(status.values()) == {OutcomeStatus.ACKNOWLEDGED} and len(status) == 20
    assert len(puts) == 20


async def test_an_unreadable_read_back_page_never_resends_the_event() -> None:
    fake = FakeMailchimp()
    fake.fault("POST", "/events", "reset_after")  # applied, answer lost
    fake.fault("GET", "/events", httpx.Response(200, content=b'{"events": [{"na'))
    dest = _dest(fake)
    with pytest.raises(MalformedResponse, match="unreadable page"):
        await _outcomes(dest, track("a@example.com", "Viewed"))
    assert sum(len(v) for v in fake.events.values()) == 1  # not sent a second time


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _batches(submit: httpx.Response | None, results: bytes | None) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/batches"):
            return submit or httpx.Response(200, json={"id": "b1", "status": "pending"})
        if "/batches/" in path:
            body: dict[str, Any] = {"id": "b1", "status": "finished"}
            if results is not None:
                body["response_body_url"] = "https://results.example/b1.tar.gz"
            return httpx.Response(200, json=body)
        if path.endswith(".tar.gz"):
            return httpx.Response(200, content=results or b"")
        return httpx.Response(200, json={"id": "x"})

    return answer


@pytest.mark.parametrize(
    ("submit", "results"),
    [
        (httpx.Response(200, content=b""), None),
        (httpx.Response(200, content=b'{"id": "b1", "sta'), None),
        (httpx.Response(200, json={"status": "pending"}), None),
        (None, b"not a tar.gz at all"),
        (None, b"\x1f\x8b\x08\x00truncated"),
        (None, _tar({"b1/0.json": b'[{"status_code": 200, "operation_id": "i0:upsert_m'})),
        (None, _tar({"b1/0.json": b'["not an object"]'})),
        (None, _tar({"b1/0.json": b'[{"status_code": "OK", "operation_id": "x"}]'})),
        (None, None),  # finished without a results archive
    ],
    ids=[
        "empty-submit",
        "truncated-submit",
        "no-batch-id",
        "not-gzip",
        "truncated-gzip",
        "truncated-json",
        "item-not-object",
        "status-not-int",
        "no-archive",
    ],
)
async def test_a_broken_batch_sends_each_record_directly(
    submit: httpx.Response | None, results: bytes | None
) -> None:
    answer = _batches(submit, results)
    direct: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            direct.append(request.url.path)
        return answer(request)

    batch = {"operations_threshold": 3, "max_records": 3, "poll_seconds": 0.001}
    messages = [identify(f"p{i}@example.com", message_id=f"i{i}") for i in range(3)]
    status = await _outcomes(_dest(recording, batch=batch), *messages)
    assert status == {f"i{i}:upsert_member": OutcomeStatus.ACKNOWLEDGED for i in range(3)}
    assert len(direct) == 3  # nothing acknowledged on the batch's word alone


async def test_a_results_archive_behind_a_redirect_is_followed() -> None:
    results = [
        {"status_code": 200, "operation_id": f"i{i}:upsert_member", "response": "{}"}
        for i in range(3)
    ]
    archive = _tar({"b1/0.json": json.dumps(results).encode()})
    answer = _batches(None, archive)

    def moved(request: httpx.Request) -> httpx.Response:
        if request.url.host == "results.example":
            return httpx.Response(307, headers={"Location": "https://eu.results.example/b1.tar.gz"})
        if request.url.host == "eu.results.example":
            return httpx.Response(200, content=archive)
        return answer(request)

    batch = {"operations_threshold": 3, "max_records": 3, "poll_seconds": 0.001}
    messages = [identify(f"p{i}@example.com", message_id=f"i{i}") for i in range(3)]
    status = await _outcomes(_dest(moved, batch=batch), *messages)
    assert status == {f"i{i}:upsert_member": OutcomeStatus.ACKNOWLEDGED for i in range(3)}


async def test_a_proxys_html_404_is_a_reject_with_its_title_not_markup() -> None:
    page = "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>…</body></html>"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=page, headers={"content-type": "text/html; charset=utf-8"})

    dest = _dest(answer)
    try:
        _, outcomes = await run(dest, identify("a@example.com"))
    finally:
        await dest.aclose()
    assert [(o.status, o.reason) for o in outcomes] == [(OutcomeStatus.REJECTED, "404 Not Found")]
