"""Fixed-window rate limiter (burst 1 s + steady 60 s), scaled by time_scale.

Klaviyo limits each endpoint per account with a 1-second burst window and a
60-second steady window (esp-api-contracts.md §1.6). With `time_scale = 60`
both windows are 60 times shorter while the counts stay the same, so a
minute's quota passes in one second.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from esp_sandbox.context import Clock

BURST_WINDOW_S = 1.0
STEADY_WINDOW_S = 60.0


@dataclass(frozen=True)
class Verdict:
    """Outcome of one admission check.

    Attributes:
        allowed: Whether the request may proceed.
        limit: Steady-window limit (for `RateLimit-Limit`).
        remaining: Steady-window requests left after this one.
        reset_s: Real seconds until the steady window resets.
        retry_after_s: Real seconds until the blocking window resets (when refused).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        """Integer `Retry-After` seconds: the ceiling, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))

    @property
    def reset_header(self) -> str:
        """Integer `RateLimit-Reset` seconds (ceiling)."""
        return str(max(0, math.ceil(self.reset_s)))


class FixedWindowLimiter:
    """Counts requests per (key, bucket) in aligned burst and steady windows."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, int], int] = {}

    def admit(self, key: str, bucket: str, burst: int, steady: int) -> Verdict:
        """Count one request if both windows have room.

        Args:
            key: Who is limited (an API key or token).
            bucket: Which limit (an endpoint's operation).
            burst: Requests allowed per (scaled) second.
            steady: Requests allowed per (scaled) minute.
        """
        now = self.clock.monotonic()
        burst_w = self.clock.scaled(BURST_WINDOW_S)
        steady_w = self.clock.scaled(STEADY_WINDOW_S)
        b_index, s_index = math.floor(now / burst_w), math.floor(now / steady_w)
        b_key, s_key = (key, bucket, "b", b_index), (key, bucket, "s", s_index)
        steady_reset = (s_index + 1) * steady_w - now
        with self._lock:
            used_b, used_s = self._counts.get(b_key, 0), self._counts.get(s_key, 0)
            if used_s >= steady:
                return Verdict(False, steady, 0, steady_reset, steady_reset)
            if used_b >= burst:
                return Verdict(
                    False, steady, steady - used_s, steady_reset, (b_index + 1) * burst_w - now
                )
            self._counts[b_key] = used_b + 1
            self._counts[s_key] = used_s + 1
            self._forget_old(b_index, s_index)
        return Verdict(True, steady, steady - used_s - 1, steady_reset, 0.0)

    def _forget_old(self, b_index: int, s_index: int) -> None:
        if len(self._counts) < 4096:
            return
        self._counts = {
            k: v
            for k, v in self._counts.items()
            if (k[2] == "b" and k[3] >= b_index) or (k[2] == "s" and k[3] >= s_index)
        }

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()
