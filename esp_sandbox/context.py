"""Shared runtime context handed to every ESP half of the sandbox.

The Klaviyo, Mailchimp and Segment halves each receive one `SandboxContext` and
draw their configuration, time, randomness, fault decisions and request log
from it, so a whole sandbox run is reproducible from `SandboxConfig.seed`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esp_sandbox.faults import FaultInjector, FaultSpec
    from esp_sandbox.recorder import Recorder


@dataclass
class SandboxConfig:
    """How one sandbox instance behaves.

    Attributes:
        faults: Fault spec (parsed `FaultSpec` or its string grammar, see
            `esp_sandbox.faults`); None means no injected faults.
        time_scale: Speed-up of every time window (rate limits, job progress).
            60 means a minute of rate limit passes in one second.
        seed: Seed for every random decision (faults, generated ids).
        klaviyo_api_keys: Accepted private keys; None accepts any `pk_` key
            with at least 6 more characters.
        klaviyo_oauth_tokens: Accepted OAuth bearer tokens; None rejects all.
        mailchimp_api_keys: Accepted keys; None accepts any `<hex>-<dc>` key
            whose data center equals `mailchimp_dc`.
        mailchimp_dc: The data center this sandbox pretends to be.
        segment_access_tokens: Accepted Segment Profiles API tokens; None
            accepts any non-empty token.
    """

    faults: FaultSpec | str | None = None
    time_scale: float = 1.0
    seed: int = 0
    klaviyo_api_keys: set[str] | None = None
    klaviyo_oauth_tokens: set[str] | None = None
    mailchimp_api_keys: set[str] | None = None
    mailchimp_dc: str = "us1"
    segment_access_tokens: set[str] | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")


class Clock:
    """Monotonic time plus wall time, with a test hook to jump forward.

    `advance()` moves both readings forward without sleeping, so tests can
    expire rate-limit windows or finish bulk jobs instantly.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (real seconds plus any `advance`)."""
        with self._lock:
            return time.monotonic() + self._offset

    def now(self) -> datetime:
        """Current time as an aware UTC datetime (plus any `advance`)."""
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + timedelta(seconds=offset)

    def scaled(self, seconds: float) -> float:
        """Real seconds that stand for `seconds` of ESP time under time_scale."""
        return seconds / self.time_scale

    def advance(self, seconds: float) -> None:
        """Jump the clock forward by `seconds` real seconds."""
        with self._lock:
            self._offset += seconds


@dataclass
class SandboxContext:
    """Everything an ESP half needs from the sandbox core.

    Attributes:
        config: The sandbox configuration.
        clock: Time source; use it instead of `time`/`datetime` directly.
        rng: Seeded random generator for ids and other choices.
        faults: Fault injector; bulk routes ask it which items to corrupt.
        recorder: Request log behind `/_sandbox/requests`.
    """

    config: SandboxConfig
    clock: Clock
    rng: random.Random
    faults: FaultInjector
    recorder: Recorder
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: SandboxConfig) -> SandboxContext:
        """Build a fresh context (clock, seeded rng, injector, recorder)."""
        from esp_sandbox.faults import FaultInjector
        from esp_sandbox.recorder import Recorder

        return cls(
            config=config,
            clock=Clock(config.time_scale),
            rng=random.Random(config.seed),
            faults=FaultInjector(config.faults, seed=config.seed),
            recorder=Recorder(),
        )

    def new_id(self, length: int = 26, alphabet: str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ") -> str:
        """A random id drawn from the seeded rng (Klaviyo-style ULID alphabet by default)."""
        bits = self.rng.getrandbits(8 * length)
        size = len(alphabet)
        return "".join(alphabet[(bits >> (8 * i)) % size] for i in range(length))
