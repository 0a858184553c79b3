"""Request log behind `/_sandbox/requests` and counters behind `/_sandbox/stats`.

Secrets never reach the log: Authorization and any header or query parameter
whose name suggests a key, token or secret is replaced with `[secure]`.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

REDACTED = "[secure]"
_SECRET_WORDS = ("authorization", "key", "token", "secret", "password", "cookie", "apikey")


def is_secret_name(name: str) -> bool:
    """Whether a header or parameter name likely carries a credential."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Header or query pairs as a dict, secrets replaced by `[secure]`."""
    return {name: (REDACTED if is_secret_name(name) else value) for name, value in pairs}


def parse_body(raw: bytes) -> Any:
    """The body as JSON when it parses, else as text (None when empty)."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


@dataclass
class RecordedRequest:
    """One request the sandbox saw, and what became of it."""

    seq: int
    time: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None
    fault: str | None = None
    duration_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Thread-safe, append-only request log with per-route counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []
        self._stats: Counter[tuple[str, str, str]] = Counter()

    def start(
        self,
        *,
        time: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> RecordedRequest:
        """Log an incoming request (status is filled in by `finish`)."""
        with self._lock:
            entry = RecordedRequest(
                seq=len(self._entries),
                time=time,
                method=method,
                path=path,
                query=redact(query),
                headers=redact(headers),
                body=parse_body(body),
            )
            self._entries.append(entry)
            return entry

    def finish(
        self,
        entry: RecordedRequest,
        *,
        route: str,
        status: int | None,
        fault: str | None,
        duration_ms: float,
    ) -> None:
        """Record the outcome; `status` None means the client got no response."""
        with self._lock:
            entry.status = status
            entry.fault = fault
            entry.duration_ms = round(duration_ms, 3)
            outcome = str(status) if status is not None else f"no-response:{fault}"
            self._stats[(entry.method, route, outcome)] += 1

    def requests(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Logged requests with `seq >= since`, oldest first, as JSON-able dicts."""
        with self._lock:
            chosen = self._entries[since : since + limit if limit else None]
            return [asdict(entry) for entry in chosen]

    def count(self) -> int:
        """How many requests were logged."""
        with self._lock:
            return len(self._entries)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per `METHOD route` and outcome (status code or no-response:<fault>)."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (method, route, outcome), n in sorted(self._stats.items()):
                out.setdefault(f"{method} {route}", {})[outcome] = n
            return out

    def reset(self) -> None:
        """Forget every request and counter."""
        with self._lock:
            self._entries.clear()
            self._stats.clear()
