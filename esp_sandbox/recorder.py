"""Request log behind `/_sandbox/requests` and counters behind `/_sandbox/stats`.

Secrets never reach the log: Authorization and any header or query parameter
whose name suggests a key, token or secret is replaced with `[secure]`.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from itertools import islice
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
    raw_body: bytes
    status: int | None = None
    fault: str | None = None
    duration_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _view(entry: RecordedRequest) -> dict[str, Any]:
    """JSON-able view; the body is parsed only now (raw bytes keep the log cheap to hold)."""
    view = asdict(entry)
    view["body"] = parse_body(view.pop("raw_body"))
    return view


class Recorder:
    """Thread-safe, append-only request log with per-route counters.

    Only the newest `max_entries` requests are kept (soaks would otherwise grow
    without bound); sequence numbers keep counting, and the counters in
    `stats()` cover every request.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[RecordedRequest] = deque(maxlen=max_entries)
        self._next_seq = 0
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
                seq=self._next_seq,
                time=time,
                method=method,
                path=path,
                query=redact(query),
                headers=redact(headers),
                raw_body=body,
            )
            self._entries.append(entry)
            self._next_seq += 1
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
            first = self._entries[0].seq if self._entries else self._next_seq
            start = max(0, since - first)
            stop = None if limit is None else start + limit
            chosen = list(islice(self._entries, start, stop))
        return [_view(entry) for entry in chosen]

    def count(self) -> int:
        """How many requests were logged (including any no longer kept)."""
        with self._lock:
            return self._next_seq

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
            self._next_seq = 0
            self._stats.clear()
