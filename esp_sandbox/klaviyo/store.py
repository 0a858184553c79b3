"""Ground-truth Klaviyo state: profiles, events, lists, subscriptions, jobs, templates.

Identifier resolution is the sandbox's own model of Klaviyo's (documented in
the README's sandbox section): an explicit profile id wins; otherwise the first
identifier that matches, in the order email, phone_number, external_id, _kx,
anonymous_id. Identifiers already owned by another profile are never moved
silently: profile writes raise `IdentifierConflict` (a 409), event writes
leave the other profile's identifier where it is.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

IDENTIFIERS = ("email", "phone_number", "external_id", "_kx", "anonymous_id")
PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
)


class IdentifierConflict(Exception):
    """An identifier in the request belongs to a different profile."""

    def __init__(self, field_name: str, owner_id: str) -> None:
        super().__init__(f"{field_name} belongs to profile {owner_id}")
        self.field_name = field_name
        self.owner_id = owner_id


@dataclass
class Profile:
    """One Klaviyo profile."""

    id: str
    created: str
    updated: str
    email: str | None = None
    phone_number: str | None = None
    external_id: str | None = None
    _kx: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    subscriptions: dict[str, Any] = field(default_factory=dict)
    last_event_date: str | None = None

    def identifier(self, name: str) -> str | None:
        """Current value of an identifier field."""
        if name == "anonymous_id":
            return self.anonymous_ids[0] if self.anonymous_ids else None
        value: str | None = getattr(self, name)
        return value


@dataclass
class Event:
    """One recorded event."""

    id: str
    profile_id: str
    metric: str
    time: str
    unique_id: str
    unique_id_defaulted: bool
    properties: dict[str, Any]
    value: float | None
    value_currency: str | None
    backfill: bool
    received: str
    via: str


@dataclass
class KList:
    """A list with its members."""

    id: str
    name: str
    opt_in_process: str
    created: str
    members: list[str] = field(default_factory=list)


class KlaviyoStore:
    """In-memory state guarded by one lock (the sandbox is small and single-loop)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.profiles: dict[str, Profile] = {}
        self.events: list[Event] = []
        self.event_keys: set[tuple[str, str, str]] = set()
        self.dropped_duplicates = 0
        self.lists: dict[str, KList] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Any] = {}
        self.subscription_jobs: list[dict[str, Any]] = []
        self._index: dict[tuple[str, str], str] = {}

    def find(self, name: str, value: str | None) -> Profile | None:
        """The profile owning identifier `name` = `value`, if any."""
        if value is None:
            return None
        owner = self._index.get((name, _key(name, value)))
        return self.profiles.get(owner) if owner else None

    def set_identifier(self, profile: Profile, name: str, value: str | None) -> None:
        """Set (or clear, with None) one identifier, keeping the lookup index in step."""
        if name == "anonymous_id":
            if value is not None and value not in profile.anonymous_ids:
                profile.anonymous_ids.append(value)
                self._index[(name, value)] = profile.id
            return
        old = profile.identifier(name)
        if old is not None:
            self._index.pop((name, _key(name, old)), None)
        setattr(profile, name, value)
        if value is not None:
            self._index[(name, _key(name, value))] = profile.id

    def resolve(self, profile_id: str | None, identifiers: dict[str, str]) -> Profile | None:
        """The existing profile a set of identifiers refers to (id first)."""
        if profile_id:
            return self.profiles.get(profile_id)
        for name in IDENTIFIERS:
            found = self.find(name, identifiers.get(name))
            if found is not None:
                return found
        return None

    def conflicts(self, target: Profile | None, identifiers: dict[str, str | None]) -> None:
        """Raise `IdentifierConflict` if any identifier belongs to another profile."""
        for name in IDENTIFIERS:
            owner = self.find(name, identifiers.get(name))
            if owner is not None and (target is None or owner.id != target.id):
                raise IdentifierConflict(name, owner.id)

    def record_event(self, event: Event) -> bool:
        """Store an event unless (profile, metric, unique_id) was seen; True when stored."""
        key = (event.profile_id, event.metric, event.unique_id)
        if key in self.event_keys:
            self.dropped_duplicates += 1
            return False
        self.event_keys.add(key)
        self.events.append(event)
        profile = self.profiles.get(event.profile_id)
        if profile is not None and (profile.last_event_date or "") < event.time:
            profile.last_event_date = event.time
        return True

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """JSON-able view of everything (for `/_sandbox/state`)."""
        events_by_profile: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for event in self.events:
            per_metric = events_by_profile.setdefault(event.profile_id, {})
            per_metric.setdefault(event.metric, []).append(asdict(event))
        return {
            "profiles": [_profile_view(p) for p in self.profiles.values()],
            "events": events_by_profile,
            "event_count": len(self.events),
            "dropped_duplicate_events": self.dropped_duplicates,
            "lists": [asdict(k) for k in self.lists.values()],
            "subscriptions": {
                p.id: p.subscriptions for p in self.profiles.values() if p.subscriptions
            },
            "subscription_jobs": list(self.subscription_jobs),
            "bulk_import_jobs": [job.view(now) for job in self.jobs.values()],
            "templates": list(self.templates.values()),
        }


def _key(name: str, value: str) -> str:
    """Index key: emails match case-insensitively."""
    return value.lower() if name == "email" else value


def _profile_view(profile: Profile) -> dict[str, Any]:
    view = asdict(profile)
    view["kx"] = view.pop("_kx")
    return view
