"""Time transforms: `date:FORMAT` and `iso8601`, from ISO-8601 text or epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mapping.transforms.base import Transform, TransformError


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from ISO-8601 text, a datetime or epoch seconds."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TransformError(f"not an ISO-8601 date or time: {value[:40]!r}") from None
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = _from_epoch(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TransformError(f"not an ISO-8601 date or time: {value[:40]!r}") from None
    else:
        raise TransformError(f"not a date or time: {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):  # OSError: beyond the C library's range
        raise TransformError(
            f"not a time in epoch seconds (years 1-9999; milliseconds?): {seconds!r}"
        ) from None


def iso8601(value: Any) -> str:
    """The transform `iso8601`: `YYYY-MM-DDTHH:MM:SS.mmmZ`, in UTC."""
    return parse_time(value).isoformat(timespec="milliseconds")[:-6] + "Z"


def date_of(arg: str) -> Transform:
    """The transform `date:arg` (`arg` a `strftime` format).

    Raises:
        ValueError: when there is no format (a config error).
    """
    if not arg:
        raise ValueError("date needs a format, e.g. date:%Y-%m-%d")
    if arg == "%Y-%m-%d":
        return _iso_date
    return lambda v: parse_time(v).strftime(arg)


def _iso_date(value: Any) -> str:
    """`date:%Y-%m-%d` without strftime (several times slower) for four-digit years."""
    parsed = parse_time(value)
    if parsed.year >= 1000:
        return parsed.date().isoformat()
    return parsed.strftime("%Y-%m-%d")
