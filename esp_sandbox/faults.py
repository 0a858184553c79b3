"""Deterministic fault injection: the spec grammar and the injector.

Grammar (comma-separated rules, whitespace ignored)::

    rule   := kind ["@" route] "=" prob [":" param] ["#" max]
    kind   := 429 | 500 | 502 | 503 | reset_before | reset_after | slow | timeout | partial
    route  := an fnmatch glob on the request path, e.g. /api/event-bulk-create-jobs*
    prob   := probability in [0, 1] that a matching request gets this fault
    param  := 429: Retry-After seconds (default 1); slow: delay seconds (default 1.0);
              timeout: hang seconds (default 30, capped at 120);
              partial: fraction of items corrupted (default 0.1, at least one item)
    max    := stop after this many injections of this rule (default unlimited)

Example: ``429=0.05,500=0.02,reset_after@/api/events*=0.01,slow=0.02:1.5,partial=0.1``.

Every request draws one number from a generator seeded with (seed, request
number), so the same seed and the same request order give the same faults.
At most one transport fault (everything but `partial`) hits a request; the
first rule (in spec order) whose cumulative probability band holds the draw wins.
`partial` is asked for separately by bulk routes through `partial_items`.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
from dataclasses import dataclass
from typing import Literal, cast, get_args

FaultKind = Literal[
    "429", "500", "502", "503", "reset_before", "reset_after", "slow", "timeout", "partial"
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
_DEFAULT_PARAM: dict[str, float] = {
    "429": 1.0,
    "slow": 1.0,
    "timeout": 30.0,
    "partial": 0.1,
}
MAX_TIMEOUT_SECONDS = 120.0
_RULE = re.compile(
    r"^(?P<kind>[a-z_0-9]+)(?:@(?P<route>[^=]+))?=(?P<prob>[0-9.]+)"
    r"(?::(?P<param>[0-9.]+))?(?:#(?P<max>[0-9]+))?$"
)


class FaultSpecError(ValueError):
    """A fault spec string that does not follow the grammar."""


@dataclass(frozen=True)
class FaultRule:
    """One fault kind with its probability, parameter, route scope and cap."""

    kind: FaultKind
    probability: float
    param: float | None = None
    route: str | None = None
    max_count: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}; known: {FAULT_KINDS}")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError(f"{self.kind}: probability {self.probability} not in [0, 1]")

    @property
    def value(self) -> float:
        """The parameter, or the kind's default."""
        if self.param is not None:
            return self.param
        return _DEFAULT_PARAM.get(self.kind, 0.0)

    def matches(self, path: str) -> bool:
        """Whether this rule applies to a request path."""
        return self.route is None or fnmatch.fnmatchcase(path, self.route)

    def render(self) -> str:
        """This rule in the spec grammar."""
        text = self.kind + (f"@{self.route}" if self.route else "") + f"={self.probability:g}"
        if self.param is not None:
            text += f":{self.param:g}"
        if self.max_count is not None:
            text += f"#{self.max_count}"
        return text


@dataclass(frozen=True)
class FaultSpec:
    """An ordered set of fault rules."""

    rules: tuple[FaultRule, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Parse the spec grammar (see module docstring); empty or None gives no faults.

        Raises:
            FaultSpecError: When a rule does not follow the grammar.
        """
        rules: list[FaultRule] = []
        for raw in (text or "").split(","):
            part = "".join(raw.split())
            if not part or part == "none":
                continue
            match = _RULE.match(part)
            if match is None:
                raise FaultSpecError(f"bad fault rule {part!r}; expected kind[@route]=p[:x][#n]")
            try:
                rules.append(
                    FaultRule(
                        kind=cast(FaultKind, match["kind"]),
                        probability=float(match["prob"]),
                        param=float(match["param"]) if match["param"] else None,
                        route=match["route"],
                        max_count=int(match["max"]) if match["max"] else None,
                    )
                )
            except ValueError as exc:
                raise FaultSpecError(f"bad fault rule {part!r}: {exc}") from exc
        return cls(tuple(rules))

    @classmethod
    def coerce(cls, spec: FaultSpec | str | None) -> FaultSpec:
        """Accept a parsed spec, a spec string, or None."""
        return spec if isinstance(spec, FaultSpec) else cls.parse(spec)

    def render(self) -> str:
        """This spec in the grammar (round-trips through `parse`)."""
        return ",".join(rule.render() for rule in self.rules)


@dataclass(frozen=True)
class Fault:
    """A fault chosen for one request."""

    kind: FaultKind
    value: float


class FaultInjector:
    """Decides, deterministically from the seed, which requests get which fault.

    Thread-safe: the sandbox server's event loop and a test thread calling
    `set_spec` may use it at once.
    """

    def __init__(self, spec: FaultSpec | str | None = None, seed: int = 0) -> None:
        self.spec = FaultSpec.coerce(spec)
        self.seed = seed
        self._counter = 0
        self._partial_counter = 0
        self._fired: dict[int, int] = {}
        self._injected: dict[str, int] = {}
        self._lock = threading.Lock()

    def set_spec(self, spec: FaultSpec | str | None) -> None:
        """Replace the rules and restart the deterministic sequence."""
        parsed = FaultSpec.coerce(spec)
        with self._lock:
            self.spec = parsed
            self._counter = 0
            self._partial_counter = 0
            self._fired = {}

    def reset(self) -> None:
        """Restart the deterministic sequence and forget injection counts."""
        with self._lock:
            self._counter = 0
            self._partial_counter = 0
            self._fired = {}
            self._injected = {}

    def decide(self, path: str) -> Fault | None:
        """Pick at most one transport fault (not `partial`) for a request to `path`."""
        with self._lock:
            self._counter += 1
            draw = random.Random(f"{self.seed}:req:{self._counter}").random()
            return self._pick(draw, path, partial=False)

    def should_corrupt_items(self, path: str) -> bool:
        """Whether a bulk request to `path` should get a partial failure."""
        return self.partial_fraction(path) is not None

    def partial_fraction(self, path: str) -> float | None:
        """The fraction of items to corrupt for this bulk request, or None."""
        with self._lock:
            self._partial_counter += 1
            draw = random.Random(f"{self.seed}:partial:{self._partial_counter}").random()
            fault = self._pick(draw, path, partial=True)
            return fault.value if fault else None

    def partial_items(self, path: str, count: int) -> list[int]:
        """Indices (sorted) of the items a bulk request should see rejected; often empty.

        Args:
            path: The request path (for `@route` scoping).
            count: How many items the request carries.
        """
        fraction = self.partial_fraction(path)
        if fraction is None or count == 0:
            return []
        with self._lock:
            rng = random.Random(f"{self.seed}:items:{self._partial_counter}")
        chosen = max(1, round(count * fraction))
        return sorted(rng.sample(range(count), min(chosen, count)))

    def injected(self) -> dict[str, int]:
        """How many faults of each kind were injected so far."""
        with self._lock:
            return dict(self._injected)

    def _pick(self, draw: float, path: str, *, partial: bool) -> Fault | None:
        band = 0.0
        for index, rule in enumerate(self.spec.rules):
            if (rule.kind == "partial") != partial or not rule.matches(path):
                continue
            if rule.max_count is not None and self._fired.get(index, 0) >= rule.max_count:
                continue
            band += rule.probability
            if draw < band:
                self._fired[index] = self._fired.get(index, 0) + 1
                self._injected[rule.kind] = self._injected.get(rule.kind, 0) + 1
                value = rule.value
                if rule.kind == "timeout":
                    value = min(value, MAX_TIMEOUT_SECONDS)
                return Fault(rule.kind, value)
        return None
