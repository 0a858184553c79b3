"""Helpers for the Mailchimp destination tests: settings, messages, a recording transport."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from connectors.base import Record
from connectors.mailchimp import MailchimpDestination, MailchimpSettings
from mapping.message import parse_message
from mapping.types import Message

API_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "a1b2c3d4e5"
SHARED = Path(__file__).resolve().parents[3].parent / "shared"
SPEC_PATH = SHARED / "specs" / "mailchimp" / "marketing-3.0.55.openapi.yaml"
PEER_PATH = SHARED / "peer-vectors" / "rudder-mailchimp.json"


def settings(**overrides: Any) -> MailchimpSettings:
    """Settings for the seeded sandbox audience, fast retries."""
    data: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": "https://us1.api.mailchimp.com/3.0",
        "list_id": LIST_ID,
        "retry": {"initial_seconds": 0.01, "max_delay_seconds": 0.05},
        "batch": {"max_age_seconds": 60},
    }
    data.update(overrides)
    return MailchimpSettings.model_validate(data)


def message(raw: dict[str, Any], ref: str = "test:1") -> Message:
    """A parsed Segment message with defaults for messageId and timestamp."""
    full = {"messageId": "m-1", "timestamp": "2026-07-20T10:00:00Z", "userId": "u-1", **raw}
    return parse_message(full, ref)


def identify(email: str, message_id: str = "m-1", **traits: Any) -> Message:
    """An identify call for `email` with extra traits."""
    return message(
        {"type": "identify", "messageId": message_id, "traits": {"email": email, **traits}}
    )


def track(email: str, event: str, message_id: str = "m-2", **properties: Any) -> Message:
    """A track call whose context carries the email."""
    return message(
        {
            "type": "track",
            "messageId": message_id,
            "event": event,
            "properties": properties,
            "context": {"traits": {"email": email}},
        }
    )


@dataclass
class Recorder:
    """A MockTransport handler that records requests and answers from a function."""

    answer: Callable[[httpx.Request], httpx.Response]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def transport(self) -> httpx.MockTransport:
        """The transport to inject."""
        return httpx.MockTransport(self)

    def bodies(self, method: str, pattern: str) -> list[Any]:
        """JSON bodies of requests whose path matches `pattern`."""
        return [
            json.loads(r.content)
            for r in self.requests
            if r.method == method and re.search(pattern, r.url.path) and r.content
        ]


def ok(request: httpx.Request) -> httpx.Response:
    """200 with a plausible body for every call."""
    if request.url.path.endswith("/events") and request.method == "POST":
        return httpx.Response(204)
    if request.url.path.endswith("/trigger"):
        return httpx.Response(204)
    if request.method == "GET" and request.url.path.endswith("/events"):
        return httpx.Response(200, json={"events": [], "total_items": 0})
    return httpx.Response(200, json={"id": "x"})


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    """A Mailchimp problem document."""
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "i-1",
        **extra,
    }
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


async def run(dest: MailchimpDestination, *messages: Message) -> list[Any]:
    """Map, process and drain messages; return records/rejects and outcomes."""
    produced: list[Any] = []
    for msg in messages:
        for item in dest.map(msg, None):
            produced.append(item)
            if isinstance(item, Record):
                await dest.process_record(item)
    outcomes = await dest.drain()
    return [produced, outcomes]


def run_sync(coro: Any) -> Any:
    """Run a coroutine in a fresh loop (for sync tests)."""
    return asyncio.run(coro)


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"Mailchimp spec not found at {SPEC_PATH} (shared/ is not beside the repo)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec: dict[str, Any] = yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader)
    relaxed = copy.deepcopy(spec)
    schemas = relaxed["components"]["schemas"]
    # Spec quirk 1: merge_fields values are typed `object`, real values are strings,
    # numbers or (ADDRESS) objects. Quirk 2: PUT marks status_if_new required although
    # its own description says "only if the email address is not already present".
    for name in ("Add_List_Members", "Add_List_Members_2"):
        schemas[name]["properties"]["merge_fields"]["additionalProperties"] = {}
    schemas["Add_List_Members_2"]["required"] = ["email_address"]
    return relaxed


def request_schema(method: str, path: str) -> dict[str, Any]:
    """The requestBody schema ($ref) of the spec operation matching a concrete path."""
    spec = _spec()
    for template, item in spec["paths"].items():
        regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(regex, path) and method.lower() in item:
            body = item[method.lower()]["requestBody"]["content"]["application/json"]
            return dict(body["schema"])
    raise AssertionError(f"no spec operation for {method} {path}")


@lru_cache(maxsize=1)
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        "urn:mc", Resource.from_contents(_spec(), default_specification=DRAFT4)
    )
    return registry


def validate_body(method: str, path: str, body: Any) -> list[str]:
    """Schema errors of a request body against the (relaxed) 3.0.55 spec."""
    registry = _registry()
    ref = request_schema(method, path)["$ref"]
    validator = Draft4Validator({"$ref": f"urn:mc{ref}"}, registry=registry)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(body)]
