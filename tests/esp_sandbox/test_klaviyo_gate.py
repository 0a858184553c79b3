"""Auth, revision, content type, trailing slash and rate limits on the Klaviyo API."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from esp_sandbox.server import SandboxServer
from esp_sandbox.testing import event_body, klaviyo_client, klaviyo_headers


def _post_event(server: SandboxServer, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/events", json=event_body(), headers=headers, timeout=10)


def _at_window_start(server: SandboxServer) -> None:
    """Wait until a fresh 1-second window so two quick requests share one window."""
    clock = server.app.sandbox.clock
    while clock.monotonic() % 1.0 > 0.05:
        time.sleep(0.01)


def _only_error(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/vnd.api+json"
    errors = response.json()["errors"]
    assert len(errors) == 1
    error: dict[str, object] = errors[0]
    assert set(error) >= {"id", "status", "code", "title", "detail", "source", "links", "meta"}
    return error


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Klaviyo-API-Key",
        "Klaviyo-API-Key sk_wrongprefix",
        "Klaviyo-API-Key pk_abc",
        "pk_abcdefgh",
    ],
)
def test_missing_or_bad_key_is_401_not_authenticated(
    server: SandboxServer, authorization: str | None
) -> None:
    headers = klaviyo_headers()
    headers.pop("Authorization")
    if authorization is not None:
        headers["Authorization"] = authorization
    response = _post_event(server, **headers)
    assert response.status_code == 401
    assert _only_error(response)["code"] == "not_authenticated"
    assert server.state()["klaviyo"]["event_count"] == 0


def test_configured_keys_and_oauth_tokens(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox(klaviyo_api_keys={"pk_only_this_one"}, klaviyo_oauth_tokens={"tok123"})
    assert _post_event(server, **klaviyo_headers(key="pk_something_else")).status_code == 401
    assert _post_event(server, **klaviyo_headers(key="pk_only_this_one")).status_code == 202
    bearer = {**klaviyo_headers(), "Authorization": "Bearer tok123"}
    assert _post_event(server, **bearer).status_code == 202
    bad_bearer = {**klaviyo_headers(), "Authorization": "Bearer nope"}
    assert _post_event(server, **bad_bearer).status_code == 401


@pytest.mark.parametrize(
    "revision", ["2026-07-15", "2026-10-15", "2024-10-15", "2025-01-15", "2026-07-15.pre"]
)
def test_current_revisions_are_accepted(server: SandboxServer, revision: str) -> None:
    assert _post_event(server, **klaviyo_headers(revision=revision)).status_code == 202


@pytest.mark.parametrize(
    ("revision", "fragment"),
    [
        ("", "Missing required header"),
        ("2026-7-15", "YYYY-MM-DD"),
        ("2026-02-30", "YYYY-MM-DD"),
        ("latest", "YYYY-MM-DD"),
        ("2023-02-22", "no longer supported"),
        ("2024-10-14", "no longer supported"),
    ],
)
def test_missing_malformed_or_legacy_revision_is_400(
    server: SandboxServer, revision: str, fragment: str
) -> None:
    headers = klaviyo_headers(revision=revision)
    if not revision:
        headers.pop("revision")
    response = _post_event(server, **headers)
    assert response.status_code == 400
    error = _only_error(response)
    assert error["code"] == "invalid_revision"
    assert fragment in str(error["detail"])
    assert error["source"] == {"parameter": "revision"}


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json"])
@pytest.mark.parametrize("path", ["/api/events", "/api/events/"])
def test_both_content_types_and_trailing_slash(
    server: SandboxServer, content_type: str, path: str
) -> None:
    headers = klaviyo_headers(**{"Content-Type": content_type})
    response = httpx.post(f"{server.url}{path}", json=event_body(), headers=headers)
    assert response.status_code == 202


def test_other_content_type_is_415(server: SandboxServer) -> None:
    headers = klaviyo_headers(**{"Content-Type": "text/plain"})
    response = httpx.post(f"{server.url}/api/events", content=b"{}", headers=headers)
    assert response.status_code == 415


def test_unknown_path_404_and_wrong_method_405_in_klaviyo_shape(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        missing = client.get("/api/no-such-thing")
        wrong = client.put("/api/events", json={})
    assert missing.status_code == 404 and _only_error(missing)["code"] == "not_found"
    assert wrong.status_code == 405


def test_malformed_json_is_400(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        response = client.post("/api/events", content=b"{not json")
    assert response.status_code == 400
    assert _only_error(response)["code"] == "parse_error"


def test_success_carries_ratelimit_headers(server: SandboxServer) -> None:
    with klaviyo_client(server) as client:
        first = client.post("/api/events", json=event_body())
        second = client.post("/api/events", json=event_body(unique_id="x"))
    assert first.headers["RateLimit-Limit"] == "3500"
    assert first.headers["RateLimit-Remaining"] == "3499"
    assert second.headers["RateLimit-Remaining"] == "3498"
    assert int(first.headers["RateLimit-Reset"]) >= 0


def test_burst_limit_gives_429_with_retry_after_and_no_ratelimit_headers(
    sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox(time_scale=1)
    _at_window_start(server)
    with klaviyo_client(server) as client:
        ok = client.get("/api/accounts")  # XS tier: 1/s burst, 15/m steady
        throttled = client.get("/api/accounts")
    assert ok.status_code == 200
    assert throttled.status_code == 429
    error = _only_error(throttled)
    assert error["code"] == "throttled"
    assert "Expected available in 1 second" in str(error["detail"])
    assert throttled.headers["Retry-After"] == "1"
    assert "RateLimit-Limit" not in throttled.headers
    assert "Retry-After-Ms" not in throttled.headers


def test_limits_are_per_key(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox(time_scale=0.01)  # 100 s windows: no boundary falls inside the test
    with (
        klaviyo_client(server, key="pk_first_key") as a,
        klaviyo_client(server, key="pk_other_key") as b,
    ):
        assert a.get("/api/accounts").status_code == 200
        assert b.get("/api/accounts").status_code == 200
        assert a.get("/api/accounts").status_code == 429


def test_time_scale_shrinks_windows_but_keeps_counts(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox(time_scale=60)
    with klaviyo_client(server) as client:
        statuses = []
        started = time.monotonic()
        while time.monotonic() - started < 1.5 and 429 not in statuses:
            statuses.append(client.get("/api/accounts").status_code)
        assert statuses[-1] == 429
        throttled = client.get("/api/accounts")
        while throttled.status_code != 429:
            throttled = client.get("/api/accounts")
        # 15/min steady becomes 15 per second: at most 15 successes per scaled minute.
        assert statuses.count(200) <= 15 * 2
        assert throttled.headers["Retry-After"] == "1"
        assert 0 < int(throttled.headers["Retry-After-Ms"]) <= 1000
        time.sleep(int(throttled.headers["Retry-After-Ms"]) / 1000 + 0.05)
        assert client.get("/api/accounts").status_code == 200


def test_steady_window_expires_with_clock_advance(sandbox: Callable[..., SandboxServer]) -> None:
    server = sandbox(time_scale=0.01)
    with klaviyo_client(server) as client:
        assert client.get("/api/accounts").status_code == 200
        assert client.get("/api/accounts").status_code == 429
        server.advance_clock(6001)  # one scaled minute
        assert client.get("/api/accounts").status_code == 200
