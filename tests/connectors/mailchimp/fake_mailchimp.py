"""A tiny in-memory Mailchimp for MockTransport tests of retries and read-back.

Faults are queued per (method, path suffix): `"reset_after"` applies the call and
then drops the connection, `"reset_before"` drops it without applying, or an
`httpx.Response` to answer instead.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class FakeMailchimp:
    """Members' events, journey triggers, and every request seen."""

    delay: float = 0.0
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    triggers: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[tuple[str, str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def fault(self, method: str, suffix: str, what: Any) -> None:
        """Queue one fault for the next matching request."""
        self.faults.append((method, suffix, what))

    def _take_fault(self, request: httpx.Request) -> Any:
        for index, (method, suffix, what) in enumerate(self.faults):
            if request.method == method and request.url.path.endswith(suffix):
                del self.faults[index]
                return what
        return None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            what = self._take_fault(request)
            if isinstance(what, httpx.Response):
                return what
            if what == "reset_before":
                raise httpx.ReadError("connection reset", request=request)
            response = self._apply(request)
            if what == "reset_after":
                raise httpx.ReadError("connection reset", request=request)
            return response
        finally:
            self.in_flight -= 1

    def _apply(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/events"):
            member = path.split("/members/")[1].split("/")[0]
            if request.method == "POST":
                self.events[member].append(json.loads(request.content))
                return httpx.Response(204)
            items = list(reversed(self.events.get(member, [])))
            return httpx.Response(200, json={"events": items, "total_items": len(items)})
        if path.endswith("/actions/trigger"):
            self.triggers.append(json.loads(request.content)["email_address"])
            return httpx.Response(204)
        if path.endswith("/ping"):
            return httpx.Response(200, json={"health_status": "Everything's Chimpy!"})
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1]})

    def names(self, member: str) -> list[str]:
        """Event names stored on a member (by subscriber hash)."""
        return [e["name"] for e in self.events.get(member, [])]
