"""The spec loader: validators, pointers, rate tiers, fast/slow validator agreement."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from esp_sandbox.klaviyo import spec as spec_module
from esp_sandbox.klaviyo.spec import KlaviyoSpec, shared_spec
from esp_sandbox.testing import event_body

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "peer-vectors" / "rudder-klaviyo.json"


@pytest.fixture(scope="module")
def spec() -> KlaviyoSpec:
    loaded = shared_spec()
    if not loaded.available:
        pytest.skip(f"Klaviyo spec absent: {loaded.status()}")
    return loaded


def test_nullable_fields_accept_null(spec: KlaviyoSpec) -> None:
    body = event_body(time=None)
    body["data"]["attributes"].update(time=None, value=None, unique_id=None)
    assert spec.check_request("/api/events", "post", body) == []


def test_missing_field_points_at_it(spec: KlaviyoSpec) -> None:
    body = event_body()
    del body["data"]["attributes"]["metric"]
    (issue,) = spec.check_request("/api/events", "post", body)
    assert issue.pointer == "/data/attributes/metric"


def test_rate_tiers_come_from_the_spec(spec: KlaviyoSpec) -> None:
    assert spec.rate_limit("/api/events", "post", "S") == (350, 3500)
    assert spec.rate_limit("/api/profile-import", "post", "S") == (75, 750)
    assert spec.rate_limit("/api/accounts", "get", "L") == (1, 15)
    assert spec.rate_limit("/api/nowhere", "get", "M") == (10, 150)


def test_missing_spec_falls_back_to_structure(tmp_path: Path) -> None:
    fallback = KlaviyoSpec(tmp_path / "absent.json")
    assert not fallback.available
    assert "minimal structural checks" in fallback.status()
    assert fallback.check_request("/api/events", "post", event_body()) == []
    assert fallback.check_request("/api/events", "post", {"data": {}})[0].pointer == "/data/type"
    assert fallback.rate_limit("/api/events", "post", "XL") == (350, 3500)


def _corpus() -> list[tuple[str, Any]]:
    bodies: list[tuple[str, Any]] = [("/api/events", event_body())]
    if VECTORS.exists():
        for case in json.loads(VECTORS.read_text())["cases"]:
            for exp in case["expected"]:
                for request in exp.get("requests") or []:
                    path = urlsplit(request.get("endpoint") or "").path
                    if path and request["method"] == "POST":
                        bodies.append((path, request["json"]))
    mutated = []
    for path, body in bodies:
        broken = copy.deepcopy(body)
        broken["data"]["type"] = 7
        mutated.append((path, broken))
    return bodies + mutated


def test_fast_and_slow_validators_agree(spec: KlaviyoSpec) -> None:
    if spec_module._fast is None:
        pytest.skip("jsonschema_rs not installed: only the pure-Python validator runs")
    corpus = _corpus()
    for path, body in corpus:
        schema = spec.request_schema(path, "post")
        fast = spec._fast_valid(f"req post {path}", schema, body)
        slow = spec._validator(f"req post {path}", schema)
        assert slow is not None
        assert fast == (not list(slow.iter_errors(body))), path
    assert any(
        spec._fast_valid(f"req post {p}", spec.request_schema(p, "post"), b) for p, b in corpus
    )
