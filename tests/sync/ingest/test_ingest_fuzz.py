"""schemathesis fuzzes the ingest API from its own OpenAPI document, on a live server.

No 5xx, answers match the documented models, and every message of an accepted
request is either stored or refused with a reason.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sync.ingest.app import create_app
from sync.ingest.settings import IngestSettings
from sync.store.schema import rejected_rows
from sync.store.state import StateStore
from tests.sync.ingest.helpers import WRITE_KEY, LiveServer, count_rows, stored_ids

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
_FUZZ_BATCH = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def _document() -> dict[str, Any]:
    # Only the routes matter for the document; the store is never touched.
    store = StateStore(sa.create_engine("sqlite://"))
    document = copy.deepcopy(create_app(IngestSettings(), store).openapi())
    # Bounded fuzzing: batches of up to 2500 messages make each example slow to generate
    # without testing anything new (the batch-size limit has its own test).
    schemas = document["components"]["schemas"]
    schemas["BatchRequest"]["properties"]["batch"]["maxItems"] = _FUZZ_BATCH
    for option in schemas["WebhookBody"]["anyOf"]:
        if option.get("type") == "array":
            option["maxItems"] = _FUZZ_BATCH
    # The message types exclude each other (`type` differs), so oneOf is anyOf; the
    # generator handles anyOf much faster.
    return orjson.loads(orjson.dumps(document).replace(b'"oneOf"', b'"anyOf"'))


# Examples and fuzzing only: the coverage phase enumerates every optional-field
# combination of every message type (thousands of requests, minutes).
_CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(_document(), config=_CONFIG)


def _messages(path: str, body: Any) -> list[Any]:
    if path == "/v1/batch":
        batch = body.get("batch") if isinstance(body, dict) else None
        return batch if isinstance(batch, list) else []
    if path == "/v1/webhook":
        return body if isinstance(body, list) else [body]
    return [body]


def _assert_stored_or_refused(
    store: StateStore, path: str, body: Any, status: int, answer: Any, ledger_before: int
) -> None:
    stored = stored_ids(store)
    messages = _messages(path, body)
    if status == 200:
        for message in messages:
            assert message["messageId"] in stored
    elif status == 400 and answer.get("code") == "invalid_messages":
        refused = {r["index"]: r for r in answer["rejected"]}
        assert all(r["reason"] for r in refused.values())
        for index, message in enumerate(messages):
            assert index in refused or message["messageId"] in stored
        assert count_rows(store, rejected_rows) == ledger_before + len(refused)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_ingest_api_holds_its_contract(case: Any, server: LiveServer, store: StateStore) -> None:
    ledger_before = count_rows(store, rejected_rows)

    response = case.call_and_validate(base_url=server.url, headers=AUTH, checks=CHECKS)

    if case.path.startswith("/v1/"):
        answer = orjson.loads(response.content)
        _assert_stored_or_refused(
            store, case.path, case.body, response.status_code, answer, ledger_before
        )
