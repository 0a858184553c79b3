"""Mailchimp's 10 simultaneous connections per API key, and the simulated response time.

Mailchimp also times requests out at 120 s; the sandbox does not enforce waits
(the core's `timeout` fault covers a hanging server).
"""

from __future__ import annotations

import threading
from collections import Counter

CONNECTION_LIMIT = 10


class ConnectionLimiter:
    """Counts in-flight requests per principal; refuses the one past the limit."""

    def __init__(self, limit: int = CONNECTION_LIMIT) -> None:
        self.limit = limit
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._refused = 0
        self._lock = threading.Lock()

    def acquire(self, principal: str) -> bool:
        """Take a slot for `principal`; False (and nothing taken) when all are busy."""
        with self._lock:
            if self._in_flight[principal] >= self.limit:
                self._refused += 1
                return False
            self._in_flight[principal] += 1
            self._peak[principal] = max(self._peak[principal], self._in_flight[principal])
            return True

    def release(self, principal: str) -> None:
        """Give back a slot taken by `acquire`."""
        with self._lock:
            self._in_flight[principal] -= 1
            if self._in_flight[principal] <= 0:
                del self._in_flight[principal]

    def snapshot(self) -> dict[str, int]:
        """Counters for `/_sandbox/state` (principals are digests, never keys)."""
        with self._lock:
            return {
                "limit": self.limit,
                "in_flight": sum(self._in_flight.values()),
                "peak": max(self._peak.values(), default=0),
                "refused": self._refused,
            }

    def reset(self) -> None:
        """Forget peaks and refusals (in-flight requests keep their slots)."""
        with self._lock:
            self._peak.clear()
            self._refused = 0
