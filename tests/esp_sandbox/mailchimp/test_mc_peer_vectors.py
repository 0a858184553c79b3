"""RudderStack's Mailchimp test vectors replayed as HTTP requests against the sandbox.

The vectors (shared/peer-vectors/rudder-mailchimp.json, Elastic License 2.0 data,
read in place) give the requests rudder-transformer sends. Current shapes must be
accepted; requests derived from the vectors' error cases (bad status, bad event
name) and mutations (hash of another address, non-string event property) must be
rejected with Mailchimp's 400 naming the field. Rewrites, each for a stated
reason: the base URL points at the sandbox; the masked API key ("mailchimp2",
which has no data-center suffix) is replaced by a valid sandbox key; the vectors'
audiences and their custom merge tags (ANONYMOUSI, FIRSTNAME) are created first,
as a real account would need them; members are created before their events, as
Mailchimp requires.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from esp_sandbox.server import SandboxServer

VECTORS = Path(__file__).resolve().parents[3].parent / "shared/peer-vectors/rudder-mailchimp.json"
if not VECTORS.exists():
    pytest.skip(f"peer vectors not found at {VECTORS}", allow_module_level=True)

DATA: dict[str, Any] = json.loads(VECTORS.read_text())
DEFAULT_TAGS = {"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"}


def _requests() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for case in DATA["cases"]:
        for i, expected in enumerate(case["expected"]):
            for j, request in enumerate(expected.get("requests") or []):
                found.append((f"{case['id']}-{i}-{j}", case, request))
    return found


def _emails(message: dict[str, Any]) -> list[str]:
    found = [
        (message.get("traits") or {}).get("email"),
        ((message.get("context") or {}).get("traits") or {}).get("email"),
    ]
    found += [x.get("id") for x in (message.get("context") or {}).get("externalId") or []]
    return [e for e in found if isinstance(e, str) and "@" in e]


EMAIL_BY_HASH = {
    hashlib.md5(email.encode()).hexdigest(): email
    for case in DATA["cases"]
    for item in case["input"]
    for email in _emails(item["message"])
}
CUSTOM_TAGS = sorted(
    {
        tag
        for _, _, request in _requests()
        for member in [request["json"], *request["json"].get("members", [])]
        for tag in (member.get("merge_fields") or {})
    }
    - DEFAULT_TAGS
)


def _split(endpoint: str) -> tuple[str, dict[str, str], list[str]]:
    parts = urlsplit(endpoint)
    path = parts.path.removeprefix("/3.0")
    return path, dict(parse_qsl(parts.query)), path.strip("/").split("/")


def _prepare(server: SandboxServer, client: httpx.Client, endpoint: str) -> None:
    """Create the vector's audience (with its custom tags) and, for events, the member."""
    _, _, segments = _split(endpoint)
    list_id = segments[1]
    fields = [{"tag": tag, "name": tag.title(), "type": "text"} for tag in CUSTOM_TAGS]
    httpx.post(
        server.url + "/_sandbox/mailchimp/lists",
        json={"id": list_id, "name": f"peer {list_id}", "merge_fields": fields},
    )
    if len(segments) >= 5 and segments[4] == "events":
        email = EMAIL_BY_HASH[segments[3]]
        made = client.put(
            f"/lists/{list_id}/members/{segments[3]}",
            json={"email_address": email, "status_if_new": "subscribed"},
        )
        assert made.status_code == 200, made.text


@pytest.mark.parametrize(
    ("case_id", "case", "request_"), _requests(), ids=[r[0] for r in _requests()]
)
def test_peer_request_is_accepted(
    mc: httpx.Client, mc_server: SandboxServer, case_id: str, case: Any, request_: dict[str, Any]
) -> None:
    _prepare(mc_server, mc, request_["endpoint"])
    path, params, segments = _split(request_["endpoint"])
    response = mc.request(request_["method"], path, params=params, json=request_["json"])
    assert response.status_code in (200, 204), f"{case_id}: {response.text}"
    body = request_["json"]
    if "members" in body:
        result = response.json()
        emails = [m["email_address"] for m in body["members"]]
        repeated = {e for e in emails if emails.count(e) > 1}
        # skip_duplicate_check=false: each repeat of an address is reported, the rest applied.
        assert {e["email_address"] for e in result["errors"]} == repeated, result["errors"]
        assert result["total_created"] + result["total_updated"] == len(set(emails))
    elif segments[-1] == "events":
        events = mc.get(path).json()["events"]
        assert events[0]["name"] == body["name"]
        assert events[0]["properties"] == body.get("properties", {})
    else:
        member = response.json()
        assert member["email_address"] == body["email_address"]
        assert member["status"] == body["status"]
        for tag, value in (body.get("merge_fields") or {}).items():
            stored = member["merge_fields"][tag]
            assert stored == value or (isinstance(value, dict) and value.items() <= stored.items())


def _error_message(case_id: str) -> dict[str, Any]:
    case = next(c for c in DATA["cases"] if c["id"] == case_id)
    message: dict[str, Any] = case["input"][0]["message"]
    return message


def test_invalid_status_from_vector_is_rejected(mc: httpx.Client) -> None:
    message = _error_message("mailchimp-processor-5")
    email = message["context"]["externalId"][0]["id"]
    body = {"email_address": email, **message["traits"]}
    response = mc.put(
        f"/lists/a1b2c3d4e5/members/{hashlib.md5(email.encode()).hexdigest()}", json=body
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "status"


@pytest.mark.parametrize("case_id", ["mailchimp-processor-21", "mailchimp-processor-22"])
def test_event_names_rudder_rejects_are_rejected_by_the_sandbox(
    mc: httpx.Client, case_id: str
) -> None:
    message = _error_message(case_id)
    email = "bob.dole@initech.com"
    key = hashlib.md5(email.encode()).hexdigest()
    mc.put(
        f"/lists/a1b2c3d4e5/members/{key}",
        json={"email_address": email, "status_if_new": "subscribed"},
    )
    response = mc.post(f"/lists/a1b2c3d4e5/members/{key}/events", json={"name": message["event"]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


PUTS = [r for r in _requests() if r[2]["method"] == "PUT"]
EVENTS_WITH_PROPS = [r for r in _requests() if r[2]["json"].get("properties")]


@pytest.mark.parametrize(("case_id", "case", "request_"), PUTS[:3], ids=[r[0] for r in PUTS[:3]])
def test_put_with_another_address_hash_is_rejected(
    mc: httpx.Client, mc_server: SandboxServer, case_id: str, case: Any, request_: dict[str, Any]
) -> None:
    _prepare(mc_server, mc, request_["endpoint"])
    path, _, segments = _split(request_["endpoint"])
    wrong = path.replace(segments[3], hashlib.md5(b"someone.else@example.com").hexdigest())
    response = mc.put(wrong, json=request_["json"])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "email_address"


@pytest.mark.parametrize(
    ("case_id", "case", "request_"),
    EVENTS_WITH_PROPS[:3],
    ids=[r[0] for r in EVENTS_WITH_PROPS[:3]],
)
def test_event_with_unstringified_property_is_rejected(
    mc: httpx.Client, mc_server: SandboxServer, case_id: str, case: Any, request_: dict[str, Any]
) -> None:
    _prepare(mc_server, mc, request_["endpoint"])
    path, _, _ = _split(request_["endpoint"])
    body = dict(request_["json"])
    first = next(iter(body["properties"]))
    body["properties"] = {**body["properties"], first: 42}
    response = mc.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == f"properties.{first}"
