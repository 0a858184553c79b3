"""RudderStack's Klaviyo vectors (current shapes, revision ≥ 2024-10-15) vs our requests.

For the same input our request must equal theirs field for field, after the
documented differences named per case (see `peers.DIFFS`). The file is read in place.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from connectors.base import Customer, Record
from connectors.klaviyo import KlaviyoDestination
from mapping.message import MessageError, parse_message
from mapping.types import RejectedRow

from .peers import our_requests, reconcile
from .testkit import PEERS, FakeKlaviyo, assert_valid, need_shared, operation_of, settings

FILE = PEERS / "rudder-klaviyo.json"
CURRENT = "2024-10-15"

# Which documented differences each case needs (anything else is a failure).
EXPECTED: dict[str, list[str]] = {
    "klaviyo-identify-150624-test-1#0": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder flattenProperties option",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-identify-150624-test-2#1": [
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder flattenProperties option",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
        "their body is not a current shape (v2 unsubscribe)",
    ],
    "klaviyo-identify-150624-test-3#2": [
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-identify-150624-test-4#3": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder enforceEmailAsPrimary option",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-identify-150624-test-5#4": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder flattenProperties option",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-track-150624-test-1#5": [
        "event profiles carry identifiers only",
        "no empty objects",
        "phones normalised to E.164",
    ],
    "klaviyo-track-150624-test-2#6": [
        "event profiles carry identifiers only",
        "no empty objects",
        "phones normalised to E.164",
        "rudder enforceEmailAsPrimary option",
    ],
    "klaviyo-track-150624-test-3#7": [],
    "klaviyo-track-150624-test-4#8": ["an invalid phone is dropped with a note; the rest is sent"],
    "klaviyo-screen-150624-test-1#9": ["screen calls are not mapped by default"],
    "klaviyo-group-test-1#10": [
        "custom_source names espbridge",
        "identifiers of the consented channels only",
        "phones normalised to E.164",
    ],
    "klaviyo-group-test-1#11": ["their body is not a current shape (v2 unsubscribe)"],
    "klaviyo-group-test-3#12": ["without a list, subscriptions go to the account"],
    "klaviyo-group-v3-test-1#14": ["custom_source names espbridge", "phones normalised to E.164"],
    "klaviyo-group-v3-test-2#15": [
        "identifiers of the consented channels only",
        "phones normalised to E.164",
    ],
    "klaviyo-identify-v3-test-1#16": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-identify-v3-test-2#17": [
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-router-150624-test-1#37": [
        "custom_source names espbridge",
        "identifiers of the consented channels only",
        "locale from context.locale",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
        "without a list, subscriptions go to the account",
    ],
    "klaviyo-router-150624-test-2#38": [
        "custom_source names espbridge",
        "identifiers of the consented channels only",
        "locale from context.locale",
        "no anonymous_id on profile payloads",
        "phones normalised to E.164",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
        "subscription profiles in any order",
    ],
    "klaviyo-router-150624-test-3#39": [
        "custom_source names espbridge",
        "event profiles carry identifiers only",
        "messages need an event time",
        "no anonymous_id on profile payloads",
        "no empty objects",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-router-150624-test-4#40": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "no empty objects",
        "rudder RETL externalId convention",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
    ],
    "klaviyo-router-150624-test-5#41": [
        "custom_source names espbridge",
        "no anonymous_id on profile payloads",
        "no empty objects",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
        "their body is not a current shape (v2 unsubscribe)",
    ],
    "klaviyo-router-150624-test-6#42": [
        "event profiles carry identifiers only",
        "messages need an event time",
        "no anonymous_id on profile payloads",
        "no empty objects",
        "rudder integrations.Klaviyo patch convention",
        "rudder traits.properties subscription convention",
        "their body is not a current shape (v2 unsubscribe)",
    ],
    "klaviyo-router-150624-test-7#43": [
        "an invalid phone is dropped with a note; the rest is sent"
    ],
    "klaviyo-router-v3-test-1#44": ["custom_source names espbridge"],
    "klaviyo-router-v3-test-2#45": [
        "identifiers of the consented channels only",
        "phones normalised to E.164",
    ],
}

# Cases where Rudder errors and we do something else on purpose.
PHONE_ERROR = "Phone number is not in E.164 format."
GROUP_ERROR = "groupId is a required field for group events"
ERROR_DIFFERENCES = {
    PHONE_ERROR: "an invalid phone is dropped with a note; the rest is sent",
    GROUP_ERROR: "without a list, subscriptions go to the account",
}


def _cases() -> list[Any]:
    if not FILE.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{FILE} is absent (../shared)"))]
    cases = json.loads(FILE.read_text())["cases"]
    return [pytest.param(c, id=f"{c['id']}#{i}") for i, c in enumerate(cases) if _current(c)]


def _current(case: dict[str, Any]) -> bool:
    revisions = {
        r.get("headers", {}).get("revision", "")
        for e in case["expected"]
        for r in e.get("requests", [])
    }
    versions = {i.get("destination_config", {}).get("apiVersion") for i in case["input"]}
    return bool(versions & {"v2", "v3"}) and all(v >= CURRENT for v in revisions if v)


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """Rudder's destination config, said in our config keys."""
    lists = ["traits.properties.listId", "context.traits.properties.listId", "groupId"]
    channels = ["traits.properties.consent", "context.traits.properties.consent"]
    return {
        "consent": {
            "paths": [
                "traits.properties.subscribe",
                "context.traits.properties.subscribe",
                "traits.subscribe",
            ],
            "channels": config.get("consent") or ["email"],
        },
        "mapping": {
            "subscribe": {"list_id": {"path": lists}, "channels": {"path": channels}},
            "unsubscribe": {"list_id": {"path": lists}},
        },
    }


def _customer(raw: dict[str, Any]) -> Customer | None:
    for ref in (raw.get("context") or {}).get("externalId") or []:
        if ref.get("type") == "klaviyo-profileId":
            return Customer("c", {"klaviyo_profile_id": [ref["id"]]})
    return None


def _map(item: dict[str, Any], prepared: set[str]) -> list[Record | RejectedRow] | str:
    raw = dict(item["message"])
    context = raw.get("context") or {}
    if context.get("mappedToDestination") and context.get("externalId"):
        # Rudder RETL rows name the profile in context.externalId; ours map it to userId.
        raw["userId"] = context["externalId"][0]["id"]
        prepared.add("rudder RETL externalId convention")
    # Our parser requires a messageId and an event time; some Rudder inputs have neither.
    raw.setdefault("messageId", f"job-{item['job_id']}")
    if not raw.get("timestamp") and not raw.get("originalTimestamp"):
        raw["timestamp"] = "2026-07-20T10:00:00Z"
    try:
        message = parse_message(raw, f"job:{item['job_id']}")
    except MessageError as exc:
        return str(exc)
    dest = KlaviyoDestination(
        "klaviyo",
        settings(**_settings(item["destination_config"])),
        transport=FakeKlaviyo().transport(),
        clock=lambda: message.timestamp,  # replayed live: never a backfill
    )
    return dest.map(message, _customer(raw))


@pytest.mark.parametrize("case", _cases())
def test_rudder_vector(case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    need_shared()
    # A router passthrough (an already-built request) is not an event: leave it out.
    inputs = [i for i in case["input"] if "type" in i.get("message", {})]
    jobs = {i["job_id"] for i in inputs}
    expected = [e for e in case["expected"] if set(e.get("job_ids") or jobs) & jobs]
    errors = {e["error"] for e in expected if e.get("error")}
    records: list[Record] = []
    notes: list[str] = []
    rejects: list[RejectedRow] = []
    prepared: set[str] = set()
    for item in inputs:
        mapped = _map(item, prepared)
        if isinstance(mapped, str):
            assert any(t in mapped for t in ("type", "random")), mapped
            continue
        records.extend(r for r in mapped if isinstance(r, Record))
        rejects.extend(r for r in mapped if isinstance(r, RejectedRow))
        notes.extend(n for r in mapped if isinstance(r, Record) for n in r.fields.get("notes", []))
    theirs_by_endpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for output in expected:
        for sent in output.get("requests", []):
            if sent.get("schema_check_klaviyo_2026_07_15", "ok") != "ok":
                prepared.add("their body is not a current shape (v2 unsubscribe)")
                continue
            endpoint = "/api" + sent["endpoint"].split("/api", 1)[1]
            if inputs[0]["message"].get("type") == "screen":
                prepared.add("screen calls are not mapped by default")
                continue
            theirs_by_endpoint[endpoint].append(sent["json"])
    for endpoint, bodies in theirs_by_endpoint.items():
        if "subscription" in endpoint:
            theirs_by_endpoint[endpoint] = _one_job_per_list(bodies)
    ours_by_endpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for endpoint, body in our_requests(records):
        ours_by_endpoint[endpoint].append(body)
        assert_valid(str(operation_of("POST", endpoint)), body)
    used: set[str] = set(prepared)
    for endpoint, bodies in theirs_by_endpoint.items():
        ours = ours_by_endpoint.get(endpoint, [])
        if "groupId is a required field for group events" in errors and "subscription" in endpoint:
            ours = [b for b in ours if "relationships" in b["data"]]
            used.add(ERROR_DIFFERENCES["groupId is a required field for group events"])
        assert len(ours) == len(bodies), f"{endpoint}: we send {len(ours)}, they send {len(bodies)}"
        pairs = _pair(endpoint, bodies, ours)
        for theirs_json, ours_json, names in pairs:
            assert ours_json == theirs_json
            used |= names
    for error in errors - set(ERROR_DIFFERENCES):
        assert error in ("Event type random is not supported", "Invalid float value"), error
    if "Invalid float value" in errors:
        assert [r.field for r in rejects] == ["value"]
    if "Phone number is not in E.164 format." in errors:
        assert any("phone_number dropped" in n for n in notes)
    used |= {ERROR_DIFFERENCES[e] for e in errors & set(ERROR_DIFFERENCES)}
    case_id = request.node.callspec.id
    assert used == set(EXPECTED[case_id]), sorted(used)


def _pair(
    endpoint: str, theirs: list[dict[str, Any]], ours: list[dict[str, Any]]
) -> list[tuple[str, str, set[str]]]:
    """Match each of their bodies with one of ours (order may differ in router cases)."""
    out = []
    remaining = list(ours)
    for body in theirs:
        best = None
        for candidate in remaining:
            result = reconcile(endpoint, body, candidate)
            if result[0] == result[1]:
                best = (candidate, result)
                break
            best = best or (candidate, result)
        assert best is not None
        remaining.remove(best[0])
        out.append(best[1])
    return out


def _one_job_per_list(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rudder sends a job per router batch; we send one per list per drain."""
    merged: dict[str, dict[str, Any]] = {}
    for body in bodies:
        key = json.dumps(body["data"].get("relationships"), sort_keys=True)
        if key not in merged:
            merged[key] = json.loads(json.dumps(body))
        else:
            profiles = body["data"]["attributes"]["profiles"]["data"]
            merged[key]["data"]["attributes"]["profiles"]["data"].extend(profiles)
    return list(merged.values())
