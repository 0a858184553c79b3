"""Ground truth of the fake Segment Unify spaces: profiles, their external ids and traits."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from esp_sandbox.context import SandboxContext

TRAIT_CLASSES = ("audience", "computed_trait")


@dataclass
class ExternalId:
    """One identifier of a profile (`user_id`, `email`, `anonymous_id`, ...)."""

    type: str
    id: str
    map_id: str
    source_id: str
    created_at: str
    first_message_id: str
    collection: str = "users"
    encoding: str = "none"

    def to_json(self, verbose: bool) -> dict[str, Any]:
        """As the external_ids endpoint renders it."""
        body: dict[str, Any] = {
            "collection": self.collection,
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at,
            "encoding": self.encoding,
            "first_message_id": self.first_message_id,
        }
        if verbose:
            body["source_id"] = self.source_id
        return body


@dataclass
class Trait:
    """One trait value with where and when it came from; `kind` is audience/computed_trait."""

    value: Any
    source_id: str
    updated_at: str
    kind: str | None = None


@dataclass
class Profile:
    """One user profile in a space."""

    segment_id: str
    created_at: str
    updated_at: str
    external_ids: list[ExternalId] = field(default_factory=list)
    traits: dict[str, Trait] = field(default_factory=dict)

    def has(self, id_type: str, value: str) -> bool:
        """Whether this profile carries the identifier."""
        return any(x.type == id_type and x.id == value for x in self.external_ids)


class ProfilesStore:
    """Profiles per space, guarded by a lock (uvicorn thread vs test threads)."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.lock = threading.RLock()
        self.spaces: dict[str, list[Profile]] = {}

    def now(self) -> str:
        """Current sandbox time, ISO 8601 with microseconds and Z."""
        return self.ctx.clock.now().isoformat().replace("+00:00", "Z")

    def new_id(self, prefix: str) -> str:
        """A Segment-style id (`use_…`, `map_…`) from the seeded generator."""
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        return prefix + "".join(self.ctx.rng.choice(alphabet) for _ in range(27))

    def find(self, space_id: str, id_type: str, value: str) -> Profile | None:
        """The profile in a space holding an identifier, or None."""
        for profile in self.spaces.get(space_id, []):
            if profile.has(id_type, value):
                return profile
        return None

    def upsert(self, space_id: str, spec: dict[str, Any]) -> Profile:
        """Create or merge a profile from a seed spec (see `parse_seed`)."""
        ids: list[tuple[str, str]] = spec["external_ids"]
        now = self.now()
        profile = next(
            (p for t, v in ids if (p := self.find(space_id, t, v)) is not None),
            None,
        )
        if profile is None:
            profile = Profile(self.new_id("use_"), now, now)
            self.spaces.setdefault(space_id, []).append(profile)
        source = str(spec.get("source_id") or "sandbox")
        for id_type, value in ids:
            if not profile.has(id_type, value):
                profile.external_ids.append(
                    ExternalId(id_type, value, self.new_id("map_"), source, now, spec["message_id"])
                )
        for kind, values in spec["traits"].items():
            for key, value in values.items():
                profile.traits[key] = Trait(value, source, now, kind or None)
        profile.updated_at = now
        return profile


def parse_seed(raw: Any) -> dict[str, Any]:
    """Validate one seed profile.

    Shape: `{"external_ids": [{"type": "user_id", "id": "u1"}, ...], "traits": {...},
    "audiences": {...}, "computed_traits": {...}, "source_id"?, "message_id"?}`.

    Raises:
        ValueError: Naming the bad field.
    """
    if not isinstance(raw, dict):
        raise ValueError("each profile must be a JSON object")
    ids = raw.get("external_ids")
    if not isinstance(ids, list) or not ids:
        raise ValueError("external_ids must be a non-empty list of {type, id}")
    pairs: list[tuple[str, str]] = []
    for item in ids:
        if not isinstance(item, dict) or not item.get("type") or not item.get("id"):
            raise ValueError(f"external_ids entry {item!r} needs type and id")
        pairs.append((str(item["type"]), str(item["id"])))
    traits: dict[str, dict[str, Any]] = {}
    for name, kind in (
        ("traits", ""),
        ("audiences", "audience"),
        ("computed_traits", "computed_trait"),
    ):
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{name} must be an object")
        traits[kind] = values
    return {
        "external_ids": pairs,
        "traits": traits,
        "source_id": raw.get("source_id"),
        "message_id": str(raw.get("message_id") or "sandbox-seed"),
    }


def profile_snapshot(profile: Profile) -> dict[str, Any]:
    """Ground truth of one profile for `/_sandbox/state`."""
    return {
        "segment_id": profile.segment_id,
        "external_ids": [{"type": x.type, "id": x.id} for x in profile.external_ids],
        "traits": {k: t.value for k, t in sorted(profile.traits.items())},
        "trait_classes": {k: t.kind for k, t in sorted(profile.traits.items()) if t.kind},
    }
