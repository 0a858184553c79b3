"""When an instance is due: start time + wait, moved out of the customer's quiet hours."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mapping.paths import get_path
from sync.triggers.settings import QuietHours

ZONE_PATHS = ("customer.traits.timezone", "context.timezone", "context.traits.timezone")


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def customer_zone(data: Mapping[str, Any], default: str) -> ZoneInfo:
    """The customer's time zone: trait `timezone`, then `context.timezone`, then `default`."""
    for path in ZONE_PATHS:
        name = get_path(data, path)
        if isinstance(name, str) and name:
            zone = _zone(name)
            if zone is not None:
                return zone
    return ZoneInfo(default)


def in_quiet_hours(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> bool:
    """True when `moment` falls inside the quiet hours, in `zone`."""
    local = moment.astimezone(zone).time().replace(tzinfo=None)
    if quiet.start <= quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_hours_end(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """The end of the quiet period containing `moment` (UTC)."""
    local = moment.astimezone(zone)
    day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        day += timedelta(days=1)
    # On a DST change `end` may exist twice (fall back): the first reading can be
    # before `moment` (inside the repeated hour), which would move the send backwards,
    # before its planned time. Then the second reading is the end. A time skipped by
    # spring forward reads (fold 0) as the instant just after the gap.
    end = datetime.combine(day, quiet.end, tzinfo=zone)
    for fold in (0, 1):
        # Converted to UTC first: aware times of one zone compare by wall time.
        reading = end.replace(fold=fold).astimezone(UTC)
        if reading > moment:
            return reading
    return moment.astimezone(UTC)


def plan_due(
    base: datetime, wait: timedelta, quiet: QuietHours | None, data: Mapping[str, Any]
) -> tuple[datetime, datetime]:
    """(due, planned): planned = base + wait; due moves to the end of quiet hours.

    With `action = "suppress"` the due time is not moved; the decision suppresses it.
    """
    planned = base + wait
    if quiet is None or quiet.action != "delay":
        return planned, planned
    zone = customer_zone(data, quiet.default_timezone)
    if in_quiet_hours(planned, quiet, zone):
        return quiet_hours_end(planned, quiet, zone), planned
    return planned, planned
