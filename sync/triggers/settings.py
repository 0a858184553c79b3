"""`[[triggers]]` and `[trigger_engine]`: what a marketer declares, validated strictly.

Durations are written `"90s"`, `"30m"`, `"24h"`, `"7d"` (or combined, `"1h30m"`).
"""

from __future__ import annotations

import math
import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from mapping.fields import FieldSpec
from mapping.paths import compile_path
from mapping.settings import StrictModel

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_DURATION = timedelta(days=36500)
"""Longer durations are config errors: no rule means a century, and due times must
stay far inside what a datetime can hold (year 9999)."""


def parse_duration(value: Any) -> Any:
    """`"30m"` → timedelta(minutes=30); timedeltas and numbers (seconds) pass through.

    Raises:
        ValueError: for text that is no duration, and for negative or absurdly long
            durations (a negative `wait` would decide before the start event).
    """
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if not text or _DURATION.sub("", text):
            raise ValueError(f"not a duration: {value!r} (write e.g. '30m', '24h', '7d')")
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        _check_range(seconds, value)
        return timedelta(seconds=seconds)
    if isinstance(value, timedelta):
        _check_range(value.total_seconds(), value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_range(value, value)
    return value


def _check_range(seconds: float, value: Any) -> None:
    # Checked before building a timedelta: "99999999999d" overflows it (a crash, not
    # a config error).
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {value!r} (write e.g. '30m', '24h', '7d')")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration too long: {value!r} (at most {MAX_DURATION.days}d)")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A window or age limit: `"0s"` would make it hold nothing (a cap that never binds,
a freshness that makes every send stale)."""


def check_path(path: str) -> str:
    """A path to read on events: `""`, `"$"` or `"."` would read the whole event (or
    raise while a run reads it), so they are config errors."""
    try:
        parts = compile_path(path)
    except ValueError:
        parts = ()
    if not parts:
        raise ValueError(f"not a path: {path!r} (write e.g. 'properties.cart_id')")
    return path


EventPath = Annotated[str, AfterValidator(check_path)]


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _matches(value: Any) -> Any:
    """`"A"` / `["A", "B"]` / `{event = ...}` / a list of those → a list of match tables."""
    if value is None:
        return []
    if isinstance(value, str | dict):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [{"event": value}]
    return [{"event": v} if isinstance(v, str) else v for v in value]


class EventMatch(StrictModel):
    """Events of these names whose properties pass every filter in `where`."""

    event: Annotated[list[str], BeforeValidator(_names)] = Field(
        min_length=1, description="Event names (track `event`)."
    )
    where: dict[EventPath, Any] = Field(
        default_factory=dict,
        description="Path → required value, or a list of allowed values (any of).",
    )


EventMatches = Annotated[list[EventMatch], BeforeValidator(_matches)]
Paths = Annotated[list[EventPath], BeforeValidator(_names)]


class CountRule(StrictModel):
    """At least `min` start events within `within`, optionally of the same value."""

    min: int = Field(ge=2, description="Events needed inside the window.")
    within: PositiveDuration = Field(description="Window length, ending at the qualifying event.")
    same: EventPath | None = Field(
        default=None, description="Path whose value the events must share, e.g. a product id."
    )


class AbsenceRule(StrictModel):
    """No event of these names for `duration` after the customer's last one."""

    events: Annotated[list[str], BeforeValidator(_names)] = Field(min_length=1)
    duration: PositiveDuration = Field(alias="for", description="Silence that fires the trigger.")


class CapRule(StrictModel):
    """At most `max` fired per customer per rolling `per` window (event time)."""

    max: int = Field(default=1, ge=1)
    per: PositiveDuration = Field(description="Window length, e.g. '24h'.")


class QuietHours(StrictModel):
    """Hours in the customer's time zone when nothing is sent."""

    start: time = Field(description="Local start, e.g. '21:00'.")
    end: time = Field(description="Local end, e.g. '08:00' (may wrap past midnight).")
    action: Literal["delay", "suppress"] = Field(
        default="delay", description="Move the send to `end`, or suppress it."
    )
    default_timezone: str = Field(
        default="UTC", description="Used when the customer has no valid `timezone` trait."
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        # start == end reads as "never quiet" to the code but "all day" to some people:
        # refuse the ambiguity instead of silently sending at night.
        if self.start == self.end:
            raise ValueError("`start` and `end` are equal: quiet hours of 0 or 24 hours?")
        return self


class Recommendations(StrictModel):
    """Content block: products the customer viewed lately and did not buy."""

    property: str = Field(default="recommendations", description="Emitted property name.")
    limit: int = Field(default=3, ge=1, le=20)
    lookback: PositiveDuration = Field(default=timedelta(days=7), description="Viewing window.")
    fallback: list[dict[str, Any]] = Field(
        default_factory=list, description="Bestsellers used to fill up to `limit`."
    )


class Emit(StrictModel):
    """What a firing sends: one event (Klaviyo metric / Mailchimp journey trigger)."""

    event: str = Field(min_length=1, max_length=200, description="Emitted event name.")
    properties: dict[str, FieldSpec] = Field(
        default_factory=dict, description="Properties resolved against the start event."
    )
    recommendations: Recommendations | None = None
    destinations: list[str] = Field(
        default_factory=list, description="Destination names; empty = every destination."
    )

    @field_validator("event")
    @classmethod
    def _named(cls, value: str) -> str:
        # A blank metric name is accepted by no ESP: every firing would be rejected.
        if not value.strip():
            raise ValueError("the emitted event name is blank")
        return value

    @field_validator("properties")
    @classmethod
    def _paths(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name, spec in value.items():
            for path in spec.path:
                try:
                    check_path(path)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_value_per_property(self) -> Emit:
        # The content block would silently overwrite a declared property of that name.
        block = self.recommendations
        if block is not None and block.property in self.properties:
            raise ValueError(
                f"properties.{block.property} is also the recommendations property: rename one"
            )
        return self


class TriggerSettings(StrictModel):
    """One `[[triggers]]` entry."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    on: EventMatches = Field(default_factory=list, description="Start event(s).")
    after: str | None = Field(default=None, description="Follow-up: starts when it fires.")
    wait: Duration = Field(default=timedelta(0), description="Delay before deciding.")
    key: Paths = Field(default_factory=list, description="Entity key path(s) of the start.")
    cancel_key: Paths = Field(default_factory=list, description="Key path(s) on cancel events.")
    key_scope: Literal["customer", "global"] = "customer"
    cancel_on: EventMatches = Field(default_factory=list, description="Exit events.")
    count: CountRule | None = None
    absence: AbsenceRule | None = None
    emit: Emit
    priority: int = Field(default=0, description="Higher wins inside a cap window.")
    cap: CapRule | None = None
    freshness: PositiveDuration | None = Field(default=None, description="Max start-event age.")
    quiet_hours: QuietHours | None = None
    consent: EventPath | None = Field(default=None, description="Path that must be true to send.")

    @model_validator(mode="before")
    @classmethod
    def _expand_absence(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("absence") is None:
            return data
        clash = [k for k in ("on", "after", "wait", "cancel_on", "count") if k in data]
        if clash:
            raise ValueError(f"absence replaces {', '.join(clash)}: remove them")
        rule = data["absence"]
        events = rule.get("events") if isinstance(rule, dict) else None
        if isinstance(rule, dict) and events is not None:
            duration = rule.get("for", rule.get("duration"))
            return {**data, "on": events, "cancel_on": events, "wait": duration}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TriggerSettings:
        if bool(self.on) == bool(self.after):
            raise ValueError("give exactly one of `on` (start events) or `after` (follow-up)")
        if self.after and self.count:
            raise ValueError("a follow-up (`after`) cannot also `count`")
        if self.after and self.wait <= timedelta(0):
            raise ValueError("a follow-up needs a positive `wait`")
        if self.cancel_key and not self.key:
            raise ValueError("`cancel_key` needs `key` (the start event's entity path)")
        return self

    @property
    def cancel_paths(self) -> list[str]:
        """Key paths read on cancel events."""
        return self.cancel_key or self.key


class GlobalCap(StrictModel):
    """At most `max` trigger emissions per customer per `per`, across every trigger."""

    max: int = Field(default=2, ge=0, description="0: no global cap.")
    per: PositiveDuration = Field(default=timedelta(hours=24))


class Activity(StrictModel):
    """Which events feed the `recommendations` content block."""

    viewed: Annotated[list[str], BeforeValidator(_names)] = ["Product Viewed"]
    bought: Annotated[list[str], BeforeValidator(_names)] = ["Order Completed"]
    product_id: str = Field(default="product_id", description="Id key inside a product.")


class TriggerEngineSettings(StrictModel):
    """`[trigger_engine]`: how and when instances are decided."""

    clock: Literal["event", "wall"] = Field(
        default="event", description="Watermark from event times, or from the wall clock."
    )
    allowed_lateness: Duration = Field(default=timedelta(minutes=5))
    global_cap: GlobalCap | None = Field(default_factory=GlobalCap)
    priority_hold: Duration = Field(
        default=timedelta(0), description="Wait for higher-priority rivals due this soon."
    )
    activity: Activity = Field(default_factory=Activity)
    retention: Duration = Field(default=timedelta(days=90), description="Keep decisions.")

    @field_validator("global_cap")
    @classmethod
    def _no_cap(cls, cap: GlobalCap | None) -> GlobalCap | None:
        # A missing table means the default cap and TOML has no null: `max = 0` is off.
        return None if cap is not None and cap.max == 0 else cap


def validate_triggers(
    triggers: list[TriggerSettings], engine: TriggerEngineSettings | None = None
) -> None:
    """Cross-trigger checks: unique names, follow-ups naming a trigger, no cycles.

    Raises:
        ValueError: naming the trigger and the problem.
    """
    engine = engine or TriggerEngineSettings()
    by_name: dict[str, TriggerSettings] = {}
    for trigger in triggers:
        if trigger.name in by_name:
            raise ValueError(f"triggers: the name {trigger.name!r} is used twice")
        by_name[trigger.name] = trigger
    for trigger in triggers:
        seen = {trigger.name}
        parent = trigger.after
        while parent is not None:
            if parent not in by_name:
                raise ValueError(f"triggers.{trigger.name}.after: no trigger named {parent!r}")
            if parent in seen:
                raise ValueError(f"triggers.{trigger.name}.after: follow-ups form a cycle")
            seen.add(parent)
            parent = by_name[parent].after
        if trigger.after and trigger.wait <= engine.priority_hold:
            raise ValueError(f"triggers.{trigger.name}.wait must exceed priority_hold")
        _check_freshness(trigger, by_name)


def quiet_length(quiet: QuietHours) -> timedelta:
    """How long the quiet hours last (they may wrap past midnight)."""
    day = timedelta(days=1)
    span = timedelta(
        hours=quiet.end.hour - quiet.start.hour, minutes=quiet.end.minute - quiet.start.minute
    )
    return span % day


DST_MARGIN = timedelta(hours=1)
"""The night a daylight-saving change sets the clocks back lasts an hour longer: quiet
hours of 21:00-08:00 then delay a send by up to 12 h, not 11 h. No zone sets its clocks
back by more than an hour, and a chain of waits would have to span a year to cross two
such nights."""


def _check_freshness(trigger: TriggerSettings, by_name: dict[str, TriggerSettings]) -> None:
    """A freshness shorter than the longest possible delay would suppress every late send."""
    if trigger.freshness is None:
        return
    longest = timedelta(0)
    delayed = False
    current: TriggerSettings | None = trigger
    while current is not None:
        longest += current.wait
        if current.quiet_hours is not None and current.quiet_hours.action == "delay":
            longest += quiet_length(current.quiet_hours)
            delayed = True
        current = by_name.get(current.after) if current.after else None
    if delayed:
        longest += DST_MARGIN
    if trigger.freshness < longest:
        dst = " (and an hour for a daylight-saving change)" if delayed else ""
        raise ValueError(
            f"triggers.{trigger.name}.freshness ({trigger.freshness}) is shorter than its waits "
            f"plus quiet hours{dst} ({longest}): sends delayed that long would always be stale"
        )
