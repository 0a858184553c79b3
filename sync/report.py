"""The run report: what one run read, sent, rejected and suppressed, and how long it took."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class RunReport:
    """Counts by outcome, API calls by endpoint, fallbacks by field, trigger decisions.

    Count names: `read` (input lines/rows), `messages` (valid), `rejected.source`, and per
    destination `<dest>.records`, `<dest>.acknowledged`, `<dest>.rejected`,
    `<dest>.suppressed`, `<dest>.already_sent`, `<dest>.duplicate_in_batch`,
    `<dest>.rejected.mapping`, `<dest>.suppressed.<reason>` (records the destination
    does not take on purpose, e.g. Mailchimp's `no_email`), and `pruned.<table>` (rows
    `[state]` retention deleted after the run: `sent_ledger`, `rejects`, `runs`). Invariants:
    `read = messages + rejected.source + skipped` and `<dest>.records = acknowledged +
    rejected + suppressed + already_sent + duplicate_in_batch`.
    """

    sync: str
    run_id: int
    dry_run: bool = False
    status: str = "running"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    counts: Counter[str] = field(default_factory=Counter)
    api_calls: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    dry_run_requests: int = 0

    @property
    def duration_s(self) -> float:
        """Seconds from start to end (or to now while running)."""
        end = self.ended_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    @property
    def rejected(self) -> int:
        """Every rejected row of the run, at any stage."""
        return sum(
            v for k, v in self.counts.items() if ".rejected" in k or k.startswith("rejected")
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able report (`--output json`)."""
        return {
            "sync": self.sync,
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": round(self.duration_s, 3),
            "counts": dict(sorted(self.counts.items())),
            "api_calls": dict(sorted(self.api_calls.items())),
            "fallbacks": dict(sorted(self.fallbacks.items())),
            "triggers": dict(sorted(self.triggers.items())),
            "errors": self.errors,
            "dry_run_requests": self.dry_run_requests,
        }


EXIT_OK, EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_FATAL, EXIT_REJECTS, EXIT_BUSY = 0, 1, 2, 3, 4, 5
"""`espbridge`'s exit codes (README, Command line): completed, an unexpected error, config
error, fatal connectivity or auth error, rejects above the threshold, the sync is running
elsewhere."""


@dataclass(slots=True, frozen=True)
class StoppedRun:
    """What stopped `espbridge run` or `retry` before it completed.

    `--output json` lists it after the reports of the syncs that completed (`retry` prints
    it alone), so stdout is still one JSON document whatever the exit code: 1, 2, 3 or 5.
    """

    sync: str | None  # None when no sync could start (bad config, state store unreachable)
    status: str  # "busy" (exit 5), else "failed" (exit 1, 2 or 3)
    exit_code: int
    error: str  # redacted by the caller

    def as_dict(self) -> dict[str, Any]:
        """The JSON entry (`--output json`)."""
        return {
            "sync": self.sync,
            "status": self.status,
            "exit_code": self.exit_code,
            "error": self.error,
        }
