"""Runs each sync on its cron expression, never two runs of one sync at once.

The lock lives in the state store, so it also holds across processes (a second
`schedule`, or a `run` from system cron). SIGTERM lets the current batch finish; a
second SIGTERM or SIGINT exits at once (`sync.runtime.exit_on_second_signal`).

Cron expressions have five fields (minute hour day-of-month month day-of-week) or are
one of croniter's `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; they are read
in UTC. Runs of one scheduler follow one another: a tick missed while the sync itself
ran is skipped (its next fire is the first tick after the run ends); a tick missed while
another sync ran, while the clock jumped forward, or (for a sync that ran before) while
the scheduler was down, fires once, as soon as possible.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from sync.config import Config
from sync.engine import FatalRunError, SyncBusy, SyncEngine
from sync.report import RunReport

log = logging.getLogger("espbridge.schedule")

# The clock may step back by this much (NTP slewing, a leap second) without rescheduling.
_CLOCK_SLACK = timedelta(seconds=5)


def _next_fire(expression: str, now: datetime) -> datetime | None:
    """The first tick of `expression` after `now`, or None if it never fires."""
    try:
        return croniter(expression, now).get_next(datetime)
    except CroniterBadDateError:  # a date that never comes, such as 30 February
        return None


def next_fire_times(config: Config, now: datetime) -> dict[str, datetime]:
    """The next fire time of every scheduled sync after `now` (syncs that never fire left out)."""
    due = {}
    for name, sync in config.syncs.items():
        if not sync.schedule:
            continue
        when = _next_fire(sync.schedule, now)
        if when is None:
            log.warning("%s never fires (%r): not scheduled", name, sync.schedule)
        else:
            due[name] = when
    return due


def _schedule_problem(expression: str, now: datetime) -> str | None:
    if not croniter.is_valid(expression):
        return "not a valid cron expression"
    fields = len(expression.split())
    # croniter reads a sixth field as seconds and a seventh as the year: a Quartz-style
    # "0 */5 * * * *" (seconds first, "every 5 minutes") would fire every second of
    # minute 0 of every fifth hour.
    if not expression.strip().startswith("@") and fields != 5:
        return (
            f"has {fields} fields, expected 5 (minute hour day-of-month month day-of-week; "
            "no seconds or year) or @hourly, @daily, @weekly, @monthly, @yearly"
        )
    if _next_fire(expression, now) is None:
        return "never fires (no such date)"
    return None


def validate_schedules(config: Config, now: datetime | None = None) -> list[str]:
    """Problems with cron expressions, as `syncs.<name>.schedule: …` lines."""
    at = now or datetime.now(UTC)
    problems = []
    for name, sync in config.syncs.items():
        problem = _schedule_problem(sync.schedule, at) if sync.schedule else None
        if problem:
            problems.append(f"syncs.{name}.schedule: {problem}: {sync.schedule!r}")
    return problems


def _missed_while_down(engine: SyncEngine, name: str, expression: str, now: datetime) -> bool:
    """Whether a sync that ran before missed its last tick (the scheduler was down then).

    Without this, a restart that straddles the 02:00 tick of a daily sync (a deploy, a
    rescheduled pod) would put its next run a whole day later. A sync that never ran
    waits for its first tick: deploying a heavy nightly sync does not start it at once.
    """
    try:
        runs = engine.store.runs(sync=name, limit=1)
        previous_tick = croniter(expression, now).get_prev(datetime)
    except Exception as exc:  # the store is down: the sync fires on its next tick
        log.warning("could not read the last run of %s: %s", name, exc)
        return False
    started = runs[0]["started_at"] if runs else None
    return started is not None and started < previous_tick


def _first_fire_times(engine: SyncEngine, now: datetime) -> dict[str, datetime]:
    """Next fire times at start; a tick missed while the scheduler was down fires at once."""
    due = next_fire_times(engine.config, now)
    for name in due:
        expression = engine.config.syncs[name].schedule or ""
        if _missed_while_down(engine, name, expression, now):
            log.info("%s missed a tick while the scheduler was down: running it now", name)
            due[name] = now
    return due


async def _fire(
    engine: SyncEngine,
    name: str,
    stop: threading.Event,
    on_report: Callable[[RunReport], None] | None,
) -> None:
    """Run one sync; nothing it raises stops the scheduler (the run record says failed)."""
    try:
        report = await engine.run_sync(name, stop=stop)
    except SyncBusy as exc:
        log.warning("skipped %s: %s", name, exc)
        return
    except FatalRunError as exc:
        log.error("run of %s failed: %s", name, exc)
        return
    except Exception:
        log.exception("run of %s failed", name)
        return
    if on_report:
        try:
            on_report(report)
        except Exception:  # e.g. stdout closed: the run itself succeeded
            log.exception("reporting the run of %s failed", name)


async def run_schedule(
    engine: SyncEngine,
    stop: threading.Event,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_report: Callable[[RunReport], None] | None = None,
    poll: float = 1.0,
) -> None:
    """Fire syncs as their schedules come due until `stop` is set.

    A run that overruns its interval does not queue a backlog: the next fire time is
    computed after it ends. A run refused because another process holds the sync's lock
    is skipped and logged. If the clock steps back, every fire time is computed again
    from the new time, so a sync is never held back by the length of the step (the engine
    keeps a running sync's lock alive). At start, a sync that has run before and missed
    its last tick fires once at once.
    """
    last = now()
    due = _first_fire_times(engine, last)
    while not stop.is_set() and due:
        current = now()
        if current < last - _CLOCK_SLACK:
            log.warning("clock stepped back from %s to %s: rescheduling", last, current)
            due = next_fire_times(engine.config, current)
        last = current
        name, when = min(due.items(), key=lambda item: item[1])
        wait = (when - current).total_seconds()
        if wait > 0:
            await asyncio.sleep(min(wait, poll))
            continue
        await _fire(engine, name, stop, on_report)
        last = now()
        when_next = _next_fire(engine.config.syncs[name].schedule or "", last)
        if when_next is None:
            del due[name]
        else:
            due[name] = when_next
