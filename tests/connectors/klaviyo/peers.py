"""Turn our records into (endpoint, body) pairs and name the documented differences."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import Record
from connectors.klaviyo.actions import ACTIONS
from connectors.klaviyo.actions.base import e164

Request = tuple[str, dict[str, Any]]
ENDPOINTS = {
    "create_event": "/api/events",
    "bulk_create_events": "/api/event-bulk-create-jobs",
    "create_or_update_profile": "/api/profile-import",
    "update_profile": "/api/profiles/{id}",
    "bulk_import_profiles": "/api/profile-bulk-import-jobs",
    "bulk_subscribe_profiles": "/api/profile-subscription-bulk-create-jobs",
    "bulk_unsubscribe_profiles": "/api/profile-subscription-bulk-delete-jobs",
}
JOBS = ("subscribe", "unsubscribe", "add_to_list")
IDENTIFIERS = {"email", "phone_number", "external_id", "anonymous_id", "_kx"}


def our_requests(records: Sequence[Record]) -> list[Request]:
    """What we send for these records without batching events/profiles (as the peers do)."""
    out: list[Request] = []
    jobs: dict[tuple[Any, ...], list[Record]] = {}
    for record in records:
        module = ACTIONS[record.action]
        if record.action in JOBS:
            jobs.setdefault((record.action, *module.batch_key(record)), []).append(record)
            continue
        request = module.build_request(record)
        out.append((ENDPOINTS[request.operation_id], request.body))
    for (action, *_), members in jobs.items():
        request = ACTIONS[action].build_batch(members)
        out.append((ENDPOINTS[request.operation_id], request.body))
    return out


def walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    """Call `visit` on every object inside `node`."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            walk(value, visit)


def drop_empty(node: Any) -> Any:
    """Without empty objects (recursively)."""
    if isinstance(node, dict):
        kept = {k: drop_empty(v) for k, v in node.items()}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(node, list):
        return [drop_empty(v) for v in node]
    return node


def _profiles(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    walk(body, lambda d: found.append(d) if d.get("type") == "profile" else None)
    return found


def _attrs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [p["attributes"] for p in _profiles(body) if isinstance(p.get("attributes"), dict)]


# Each documented difference: (endpoint, theirs, ours) -> (theirs, ours), on copies.
Diff = Callable[[str, dict[str, Any], dict[str, Any]], None]


def empty_objects(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """We never send empty objects (`meta.patch_properties: {}`, `location: {}`)."""
    cleaned = drop_empty(theirs)
    theirs.clear()
    theirs.update(cleaned)


def phone_e164(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """We send phones normalised to E.164 and drop invalid ones (with a note)."""
    for attributes in _attrs(theirs):
        if "phone_number" in attributes:
            normal, _ = e164(attributes["phone_number"], None)
            if normal is None:
                del attributes["phone_number"]
            else:
                attributes["phone_number"] = normal


def event_profile_identifiers_only(
    endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]
) -> None:
    """Event profiles carry identifiers only: traits go through upsert_profile."""
    if endpoint == "/api/events":
        for attributes in _attrs(theirs):
            for key in set(attributes) - IDENTIFIERS:
                del attributes[key]


def no_anonymous_id_on_profiles(
    endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]
) -> None:
    """Revision 2026-01-15 removed anonymous_id from profile payloads: events only."""
    if endpoint != "/api/events":
        for attributes in _attrs(theirs):
            attributes.pop("anonymous_id", None)


def identifiers_of_channels(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """A (un)subscription profile carries only the identifiers of its channels."""
    if "subscription" in endpoint:
        for attributes in _attrs(theirs):
            channels = attributes.get("subscriptions") or {"sms": 1, "email": 1}
            if "sms" not in channels:
                attributes.pop("phone_number", None)
            if "email" not in channels:
                attributes.pop("email", None)


def event_time(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """Our messages always have an event time (the test gives one where theirs had none)."""
    if endpoint == "/api/events" and "time" not in theirs["data"]["attributes"]:
        ours["data"]["attributes"].pop("time", None)


def jobs_per_list(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """One subscription job per list and batch (profile order inside a job is not meaningful)."""
    if "subscription" in endpoint:
        for body in (theirs, ours):
            body["data"]["attributes"]["profiles"]["data"].sort(
                key=lambda p: json.dumps(p, sort_keys=True)
            )


def custom_source(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """Our subscribe jobs name their source (`custom_source = "espbridge"`)."""
    if "custom_source" not in theirs["data"]["attributes"]:
        ours["data"]["attributes"].pop("custom_source", None)


def flatten_properties(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """RudderStack's `flattenProperties` option: we keep nested properties."""
    for attributes in _attrs(ours):
        if isinstance(attributes.get("properties"), dict):
            attributes["properties"] = _flat(attributes["properties"])


def _flat(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def rudder_patch_convention(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """RudderStack reads append/unappend/unset from `integrations.Klaviyo`; we use config."""
    patch = (theirs["data"].pop("meta", None) or {}).get("patch_properties") or {}
    moved = {k for part in ("append", "unappend") for k in patch.get(part) or {}}
    for attributes in _attrs(ours):
        for key in moved:
            (attributes.get("properties") or {}).pop(key, None)


def rudder_email_as_primary(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """RudderStack's `enforceEmailAsPrimary` moves userId to `properties._id`."""
    for attributes in _attrs(theirs):
        props = attributes.get("properties") or {}
        if "_id" in props:
            attributes["external_id"] = props.pop("_id")


def rudder_subscription_traits(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """RudderStack keeps its subscription settings in `traits.properties` (a Rudder convention)."""
    for attributes in _attrs(ours):
        props = attributes.get("properties")
        if isinstance(props, dict):
            props.pop("properties", None)
            if not props:
                attributes.pop("properties")


def locale(endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    """We fill the profile's locale from `context.locale` (Segment libraries send it)."""
    for mine, other in zip(_attrs(ours), _attrs(theirs), strict=False):
        if "locale" not in other:
            mine.pop("locale", None)


DIFFS: dict[str, Diff] = {
    "rudder enforceEmailAsPrimary option": rudder_email_as_primary,
    "rudder integrations.Klaviyo patch convention": rudder_patch_convention,
    "rudder traits.properties subscription convention": rudder_subscription_traits,
    "rudder flattenProperties option": flatten_properties,
    "no empty objects": empty_objects,
    "phones normalised to E.164": phone_e164,
    "event profiles carry identifiers only": event_profile_identifiers_only,
    "no anonymous_id on profile payloads": no_anonymous_id_on_profiles,
    "identifiers of the consented channels only": identifiers_of_channels,
    "messages need an event time": event_time,
    "custom_source names espbridge": custom_source,
    "locale from context.locale": locale,
    "subscription profiles in any order": jobs_per_list,
}


def reconcile(
    endpoint: str, theirs: dict[str, Any], ours: dict[str, Any]
) -> tuple[str, str, set[str]]:
    """Both bodies after applying every difference that changes something, and their names."""
    theirs, ours = copy.deepcopy(theirs), copy.deepcopy(ours)
    used: set[str] = set()
    for name, diff in DIFFS.items():
        before = json.dumps([theirs, ours], sort_keys=True)
        diff(endpoint, theirs, ours)
        if json.dumps([theirs, ours], sort_keys=True) != before:
            used.add(name)
    return json.dumps(theirs, sort_keys=True), json.dumps(ours, sort_keys=True), used
