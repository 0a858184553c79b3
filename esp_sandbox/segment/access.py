"""Profiles API access control: Basic auth with the token as username, 100 requests/s per space.

Errors use Segment's body `{"error": {"code", "message"}}` (S-DOCS profile-api.md).
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import deque

from esp_sandbox.context import Clock, SandboxConfig

REQUESTS_PER_SECOND = 100


class ProfilesApiError(Exception):
    """An error answer of the Profiles API."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        """The documented error body."""
        return {"error": {"code": self.code, "message": self.message}}


def authenticate(authorization: str | None, config: SandboxConfig) -> None:
    """Accept `Authorization: Basic base64("<token>:")` with an accepted token.

    Raises:
        ProfilesApiError: 401 authentication_error.
    """
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        raise ProfilesApiError(401, "authentication_error", "No valid Access Token provided.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ProfilesApiError(401, "authentication_error", "Malformed Basic credentials.") from exc
    token = decoded.partition(":")[0]
    accepted = config.segment_access_tokens
    if not token or (accepted is not None and token not in accepted):
        raise ProfilesApiError(401, "authentication_error", "No valid Access Token provided.")


class SpaceRateLimiter:
    """Sliding one-second window per space; the window shrinks with time_scale."""

    def __init__(self, clock: Clock, limit: int = REQUESTS_PER_SECOND) -> None:
        self.clock = clock
        self.limit = limit
        self._hits: dict[str, deque[float]] = {}
        self._refused = 0
        self._lock = threading.Lock()

    def admit(self, space_id: str) -> None:
        """Count one request for the space.

        Raises:
            ProfilesApiError: 429 rate_limit_error past `limit` in the window.
        """
        now = self.clock.monotonic()
        window = self.clock.scaled(1.0)
        with self._lock:
            hits = self._hits.setdefault(space_id, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= self.limit:
                self._refused += 1
                raise ProfilesApiError(
                    429, "rate_limit_error", "Too many requests hit the API too quickly."
                )
            hits.append(now)

    def refused(self) -> int:
        """How many requests were refused so far."""
        with self._lock:
            return self._refused

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            self._hits.clear()
            self._refused = 0
