"""Test helpers: the official spec and SDK models as validators, messages, a fake Klaviyo."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from connectors.base import Customer, Outcome, OutcomeStatus, Record
from connectors.klaviyo import KlaviyoDestination, KlaviyoSettings
from connectors.klaviyo.actions import ACTIONS
from connectors.klaviyo.limits import OPERATIONS
from mapping.message import parse_message
from mapping.types import Message

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
SPEC = SHARED / "specs" / "klaviyo" / "stable.json"
PEERS = SHARED / "peer-vectors"
NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
API_KEY = "pk_test_0123456789"

SDK_MODELS = {
    "create_event": "EventCreateQueryV2",
    "bulk_create_events": "EventsBulkCreateJob",
    "create_or_update_profile": "ProfileUpsertQuery",
    "update_profile": "ProfilePartialUpdateQuery",
    "bulk_import_profiles": "ProfileImportJobCreateQuery",
    "bulk_subscribe_profiles": "SubscriptionCreateJobCreateQuery",
    "bulk_unsubscribe_profiles": "SubscriptionDeleteJobCreateQuery",
}


def operation_of(method: str, path: str) -> str | None:
    """The operation id of a Klaviyo request, from our operation table."""
    for op in OPERATIONS.values():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", op.path) + "$"
        if op.method == method and re.match(pattern, path):
            return op.operation_id
    return None


def need_shared() -> None:
    """Skip when ../shared (spec, peer vectors) is not beside the project."""
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is absent: the official Klaviyo spec lives in ../shared")


@cache
def _spec() -> dict[str, Any]:
    return dict(json.loads(SPEC.read_text()))


def _openapi_to_jsonschema(node: Any) -> Any:
    # OpenAPI 3.0 `nullable: true` is not JSON Schema: allow null explicitly.
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


@cache
def spec_validator(operation_id: str) -> jsonschema.protocols.Validator:
    """A validator for an operation's requestBody schema, $refs resolved within the spec."""
    need_shared()
    spec = _spec()
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                schema = op["requestBody"]["content"]["application/vnd.api+json"]["schema"]
                root = {**schema, "components": _openapi_to_jsonschema(spec["components"])}
                return jsonschema.Draft7Validator(root)
    raise KeyError(operation_id)


def _subset_errors(ours: Any, theirs: Any, path: str = "") -> list[str]:
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: SDK model dropped the object"]
        errors: list[str] = []
        for key, value in ours.items():
            if key not in theirs:
                errors.append(f"{path}/{key}: not a field of the SDK model")
            else:
                errors.extend(_subset_errors(value, theirs[key], f"{path}/{key}"))
        return errors
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [f"{path}: list differs in the SDK model"]
        return [
            e
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for e in _subset_errors(a, b, f"{path}/{i}")
        ]
    return [] if _same(ours, theirs) else [f"{path}: {ours!r} became {theirs!r}"]


def _same(ours: Any, theirs: Any) -> bool:
    if ours == theirs:
        return True
    try:  # the SDK re-renders date-times (…123Z → …123000Z): same instant is the same value
        return bool(datetime.fromisoformat(ours) == datetime.fromisoformat(theirs))
    except (TypeError, ValueError):
        return False


def assert_valid(operation_id: str, body: Mapping[str, Any]) -> None:
    """The body validates against the official spec AND survives klaviyo-api's model."""
    errors = sorted(spec_validator(operation_id).iter_errors(body), key=str)
    assert not errors, f"{operation_id}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
    )
    import openapi_client.models as models

    model = getattr(models, SDK_MODELS[operation_id]).from_dict(dict(body))
    dumped = model.model_dump(mode="json", by_alias=True)
    problems = _subset_errors(json.loads(json.dumps(body)), dumped)
    assert not problems, f"{operation_id} vs SDK {SDK_MODELS[operation_id]}: {problems[:5]}"


def message(raw: Mapping[str, Any], ref: str = "test:1") -> Message:
    """A parsed Segment message with defaults filled in."""
    base: dict[str, Any] = {
        "messageId": "m-1",
        "anonymousId": "anon-0",
        "timestamp": "2026-07-20T10:00:00.000Z",
    }
    return parse_message({**base, **raw}, ref)


def settings(**overrides: Any) -> KlaviyoSettings:
    """Settings with a test key pointing at a fake base URL."""
    data: dict[str, Any] = {"api_key": API_KEY, "base_url": "https://klaviyo.test"}
    return KlaviyoSettings.model_validate({**data, **overrides})


def records_of(
    destination: KlaviyoDestination, raw: Mapping[str, Any], customer: Customer | None = None
) -> list[Record]:
    """The records (not rejects) a destination maps one message to."""
    records = [r for r in destination.map(message(raw), customer) if isinstance(r, Record)]
    for record in records:  # every record matches its action's declared fields model
        ACTIONS[record.action].FIELDS.model_validate(dict(record.fields))
    return records


class FakeKlaviyo:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(
        self, answer: Callable[[httpx.Request, Any], httpx.Response] | None = None
    ) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.answer = answer or (lambda request, body: httpx.Response(202))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = request.content.decode()
        self.requests.append((request.method, request.url.path, body))
        operation = operation_of(request.method, request.url.path)
        if operation in SDK_MODELS and SPEC.is_file() and isinstance(body, dict):
            assert_valid(operation, body)  # every body any test sends is spec- and SDK-valid
        return self.answer(request, body)

    def transport(self) -> httpx.MockTransport:
        """The httpx transport to inject."""
        return httpx.MockTransport(self)

    def paths(self) -> list[str]:
        """`METHOD /path` of every request, in order."""
        return [f"{m} {p}" for m, p, _ in self.requests]


def statuses(outcomes: list[Outcome]) -> dict[str, OutcomeStatus]:
    """Outcome status by key."""
    return {o.key: o.status for o in outcomes}


def destination(
    fake: FakeKlaviyo | None = None, *, now: datetime = NOW, **overrides: Any
) -> KlaviyoDestination:
    """A destination on a fake transport with a fixed clock."""
    transport = (fake or FakeKlaviyo()).transport()
    return KlaviyoDestination(
        "klaviyo", settings(**overrides), transport=transport, clock=lambda: now
    )
