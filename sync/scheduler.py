"""Runs each sync on its cron expression, never two runs of one sync at once.

The lock lives in the state store, so it also holds across processes (a second
`schedule`, or a `run` from system cron). SIGTERM lets the current batch finish.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from croniter import croniter

from sync.config import Config
from sync.engine import FatalRunError, SyncBusy, SyncEngine
from sync.report import RunReport

log = logging.getLogger("espbridge.schedule")


def next_fire_times(config: Config, now: datetime) -> dict[str, datetime]:
    """The next fire time of every scheduled sync after `now`."""
    return {
        name: croniter(sync.schedule, now).get_next(datetime)
        for name, sync in config.syncs.items()
        if sync.schedule
    }


def validate_schedules(config: Config) -> list[str]:
    """Problems with cron expressions, as `syncs.<name>.schedule: …` lines."""
    return [
        f"syncs.{name}.schedule: not a valid cron expression: {sync.schedule!r}"
        for name, sync in config.syncs.items()
        if sync.schedule and not croniter.is_valid(sync.schedule)
    ]


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
    is skipped and logged.
    """
    due = next_fire_times(engine.config, now())
    while not stop.is_set() and due:
        name, when = min(due.items(), key=lambda item: item[1])
        wait = (when - now()).total_seconds()
        if wait > 0:
            await asyncio.sleep(min(wait, poll))
            continue
        try:
            report = await engine.run_sync(name, stop=stop)
            if on_report:
                on_report(report)
        except SyncBusy as exc:
            log.warning("skipped %s: %s", name, exc)
        except FatalRunError as exc:
            log.error("run of %s failed: %s", name, exc)
        except Exception:
            log.exception("run of %s failed", name)
        due[name] = next_fire_times(engine.config, now())[name]
