"""Profiles API reads: a profile's traits, external ids and metadata.

Paging follows S-DOCS profile-api.md: `limit` plus a `next` cursor; the
response's `cursor` has `url`, `has_more`, `next` (and `limit` for traits).
Traits are ordered by key and `next` is the first key of the next page, as in
Segment's own example (`"next": "browser"`); external ids are ordered by
creation and `next` is the next one's opaque `map_…` id.
"""

from __future__ import annotations

import re
from typing import Any

from esp_sandbox.segment.access import ProfilesApiError
from esp_sandbox.segment.store import TRAIT_CLASSES, Profile, ProfilesStore

_ID_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
TRAITS_DEFAULT_LIMIT, TRAITS_MAX_LIMIT = 10, 200
IDS_DEFAULT_LIMIT, IDS_MAX_LIMIT = 10, 100


def _not_found() -> ProfilesApiError:
    return ProfilesApiError(404, "not_found", "Profile was not found.")


def resolve(store: ProfilesStore, space_id: str, identifier: str) -> Profile:
    """The profile an `<id_type>:<value>` identifier names.

    Raises:
        ProfilesApiError: 400 validation_error for a malformed identifier,
            404 not_found for an unknown profile.
    """
    id_type, sep, value = identifier.partition(":")
    if not sep or not value or not _ID_TYPE.match(id_type):
        raise ProfilesApiError(
            400,
            "validation_error",
            f"The identifier `{identifier}` must be `<id_type>:<value>` with a lowercase id_type.",
        )
    profile = store.find(space_id, id_type, value)
    if profile is None:
        raise _not_found()
    return profile


def _limit(query: dict[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ProfilesApiError(
            400, "invalid_request_error", f"The parameter `limit` must be between 1 and {maximum}."
        )
    return int(raw)


def _includes(query: dict[str, str]) -> set[str] | None:
    raw = query.get("include")
    return {part.strip() for part in raw.split(",") if part.strip()} if raw else None


def traits(profile: Profile, query: dict[str, str], url: str) -> dict[str, Any]:
    """The traits page for a query (`class`, `include`, `limit`, `next`, `verbose`)."""
    limit = _limit(query, TRAITS_DEFAULT_LIMIT, TRAITS_MAX_LIMIT)
    wanted_class = query.get("class")
    if wanted_class and wanted_class not in TRAIT_CLASSES:
        raise ProfilesApiError(
            400,
            "invalid_request_error",
            "The parameter `class` must be audience or computed_trait.",
        )
    include = _includes(query)
    keys = sorted(
        key
        for key, trait in profile.traits.items()
        if (include is None or key in include) and (not wanted_class or trait.kind == wanted_class)
    )
    start = query.get("next") or ""
    keys = [k for k in keys if k >= start] if start else keys
    page, rest = keys[:limit], keys[limit:]
    verbose = query.get("verbose") == "true"
    body = {
        key: (
            {
                "value": profile.traits[key].value,
                "source_id": profile.traits[key].source_id,
                "updated_at": profile.traits[key].updated_at,
            }
            if verbose
            else profile.traits[key].value
        )
        for key in page
    }
    cursor = {"url": url, "has_more": bool(rest), "next": rest[0] if rest else "", "limit": limit}
    return {"traits": body, "cursor": cursor}


def external_ids(profile: Profile, query: dict[str, str], url: str) -> dict[str, Any]:
    """The external ids page for a query (`include`, `limit`, `next`, `verbose`)."""
    limit = _limit(query, IDS_DEFAULT_LIMIT, IDS_MAX_LIMIT)
    include = _includes(query)
    items = [x for x in profile.external_ids if include is None or x.type in include]
    start = query.get("next")
    if start:
        positions = [i for i, x in enumerate(items) if x.map_id == start]
        if not positions:
            raise ProfilesApiError(400, "invalid_request_error", "The `next` cursor is not valid.")
        items = items[positions[0] :]
    page, rest = items[:limit], items[limit:]
    verbose = query.get("verbose") == "true"
    return {
        "data": [x.to_json(verbose) for x in page],
        "cursor": {"url": url, "has_more": bool(rest), "next": rest[0].map_id if rest else ""},
    }


def metadata(profile: Profile) -> dict[str, Any]:
    """The profile's metadata."""
    first = profile.external_ids[0] if profile.external_ids else None
    message = first.first_message_id if first else ""
    source = first.source_id if first else ""
    return {
        "metadata": {
            "created_at": profile.created_at,
            "updated_at": profile.updated_at,
            "expires_at": None,
            "first_message_id": message,
            "first_source_id": source,
            "last_message_id": message,
            "last_source_id": source,
        }
    }
