"""Profile writes shared by events, profile create/import/patch, bulk import and subscribe."""

from __future__ import annotations

from typing import Any, Literal

from esp_sandbox.context import SandboxContext
from esp_sandbox.klaviyo.store import IDENTIFIERS, PROFILE_FIELDS, KlaviyoStore, Profile
from esp_sandbox.klaviyo.validate import normalize_phone

WriteMode = Literal["event", "create", "import", "patch"]


def identifiers_of(attrs: dict[str, Any]) -> dict[str, str | None]:
    """Identifier fields present in profile attributes (phone in E.164; None = clear)."""
    found: dict[str, str | None] = {}
    for name in IDENTIFIERS:
        if name in attrs:
            value = attrs[name]
            if name == "phone_number" and isinstance(value, str):
                value = normalize_phone(value) or value
            found[name] = value if value is None else str(value)
    return found


def write_profile(
    store: KlaviyoStore,
    ctx: SandboxContext,
    profile_id: str | None,
    attrs: dict[str, Any],
    meta: dict[str, Any] | None,
    mode: WriteMode,
) -> tuple[Profile, bool]:
    """Create or update the profile the request names; returns (profile, created).

    Raises:
        IdentifierConflict: For create/import/patch when an identifier is
            owned by another profile (create: when any identifier exists).
        KeyError: When `profile_id` names no profile.
    """
    ids = identifiers_of(attrs)
    present = {k: v for k, v in ids.items() if v is not None}
    if mode == "create":
        store.conflicts(None, dict(present))
        target = None
    elif profile_id:
        target = store.profiles[profile_id]
    else:
        target = store.resolve(None, present)
    if mode in ("import", "patch"):
        store.conflicts(target, dict(present))
    created = target is None
    now = ctx.clock.now().isoformat()
    if target is None:
        target = Profile(id="01" + ctx.new_id(24), created=now, updated=now)
        store.profiles[target.id] = target
    _apply_identifiers(store, target, ids, only_free=mode == "event")
    _apply_fields(target, attrs)
    _apply_meta(target, meta or {})
    target.updated = now
    return target, created


def _apply_identifiers(
    store: KlaviyoStore, profile: Profile, ids: dict[str, str | None], *, only_free: bool
) -> None:
    for name, value in ids.items():
        if name == "anonymous_id":
            if value and store.find(name, value) is None:
                store.set_identifier(profile, name, value)
            continue
        if only_free and value is not None:
            owner = store.find(name, value)
            if owner is not None and owner.id != profile.id:
                continue
        if only_free and value is None:
            continue
        store.set_identifier(profile, name, value)


def _apply_fields(profile: Profile, attrs: dict[str, Any]) -> None:
    for name in PROFILE_FIELDS:
        if name not in attrs:
            continue
        if attrs[name] is None:
            profile.attributes.pop(name, None)
        elif name == "location" and isinstance(attrs[name], dict):
            merged = {**profile.attributes.get("location", {}), **attrs[name]}
            profile.attributes["location"] = {k: v for k, v in merged.items() if v is not None}
        else:
            profile.attributes[name] = attrs[name]
    props = attrs.get("properties")
    if isinstance(props, dict):
        profile.properties.update(props)


def _apply_meta(profile: Profile, meta: dict[str, Any]) -> None:
    patch = meta.get("patch_properties") or {}
    for key, value in (patch.get("append") or {}).items():
        current = profile.properties.get(key)
        items = current if isinstance(current, list) else ([] if current is None else [current])
        profile.properties[key] = [*items, *(value if isinstance(value, list) else [value])]
    for key, value in (patch.get("unappend") or {}).items():
        current = profile.properties.get(key)
        if isinstance(current, list):
            drop = value if isinstance(value, list) else [value]
            profile.properties[key] = [item for item in current if item not in drop]
    unset = patch.get("unset")
    for key in [unset] if isinstance(unset, str) else unset or []:
        profile.properties.pop(key, None)


def profile_resource(profile: Profile, base_url: str) -> dict[str, Any]:
    """A profile as a JSON:API resource (the shape `GET /api/profiles/{id}` returns)."""
    attrs = profile.attributes
    location = attrs.get("location") or {}
    return {
        "type": "profile",
        "id": profile.id,
        "attributes": {
            "email": profile.email,
            "phone_number": profile.phone_number,
            "external_id": profile.external_id,
            "first_name": attrs.get("first_name"),
            "last_name": attrs.get("last_name"),
            "organization": attrs.get("organization"),
            "locale": attrs.get("locale"),
            "title": attrs.get("title"),
            "image": attrs.get("image"),
            "created": profile.created,
            "updated": profile.updated,
            "last_event_date": profile.last_event_date,
            "location": {key: location.get(key) for key in _LOCATION_KEYS},
            "properties": profile.properties,
        },
        "relationships": {
            "lists": {"links": _links(base_url, f"profiles/{profile.id}/relationships/lists")},
            "segments": {
                "links": _links(base_url, f"profiles/{profile.id}/relationships/segments")
            },
        },
        "links": {"self": f"{base_url}/api/profiles/{profile.id}/"},
    }


_LOCATION_KEYS = (
    "address1",
    "address2",
    "city",
    "country",
    "latitude",
    "longitude",
    "region",
    "zip",
    "timezone",
    "ip",
)


def _links(base_url: str, tail: str) -> dict[str, str]:
    return {"self": f"{base_url}/api/{tail}/", "related": f"{base_url}/api/{tail}/"}
