"""Counting HTTP calls by endpoint, and the dry-run transport that sends nothing."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol

import httpx
import orjson

from connectors.http import redact_headers

_ID_SEGMENT = re.compile(r"/(?=[^/]*\d)[A-Za-z0-9_\-.%@]{6,}(?=/|$)")


def endpoint_name(request: httpx.Request) -> str:
    """`POST /api/profiles/{id}`: the method and path with ids folded, for counters."""
    return f"{request.method} {_ID_SEGMENT.sub('/{id}', request.url.path)}"


class Writer(Protocol):
    """Anything with `write(str)`: a file, sys.stdout, a StringIO."""

    def write(self, text: str, /) -> int:
        """Write text."""
        ...


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and counts calls by endpoint and status class."""

    def __init__(self, inner: httpx.AsyncBaseTransport, counter: Counter[str]) -> None:
        self.inner = inner
        self.counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Count, then delegate."""
        name = endpoint_name(request)
        self.counter[name] += 1
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self.counter[f"{name} (network error)"] += 1
            raise
        if response.status_code >= 400:
            self.counter[f"{name} ({response.status_code})"] += 1
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


class DryRunTransport(httpx.AsyncBaseTransport):
    """Writes each request it is given (secrets redacted) and answers with a success.

    Nothing leaves the machine. Answers are shaped to let clients finish: an empty 202
    for writes, job-like documents for job polling, and a completed batch for Mailchimp.
    """

    def __init__(self, out: Writer) -> None:
        self.out = out
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record the request, answer success."""
        self.count += 1
        body: Any = None
        if request.content:
            try:
                body = orjson.loads(request.content)
            except orjson.JSONDecodeError:
                body = request.content.decode("utf-8", "replace")[:2000]
        line = {
            "method": request.method,
            "url": str(request.url),
            "headers": redact_headers(dict(request.headers)),
            "json": body,
        }
        self.out.write(orjson.dumps(line).decode() + "\n")
        return httpx.Response(200 if request.method == "GET" else 202, json=_dry_answer(request))


def _dry_answer(request: httpx.Request) -> Any:
    path = request.url.path
    job = {
        "id": f"dry-run-{request.method.lower()}",
        "type": "job",
        "attributes": {
            "status": "complete",
            "total_count": 0,
            "completed_count": 0,
            "failed_count": 0,
        },
    }
    if "/3.0/" in path or path.startswith("/3.0"):
        return {
            "id": "dry-run",
            "status": "finished",
            "total_operations": 0,
            "finished_operations": 0,
            "errored_operations": 0,
            "response_body_url": "",
            "new_members": [],
            "updated_members": [],
            "errors": [],
            "merge_fields": [],
            "total_items": 0,
            "events": [],
        }
    return {
        "data": [] if request.method == "GET" and path.rstrip("/").endswith("s") else job,
        "links": {},
    }
