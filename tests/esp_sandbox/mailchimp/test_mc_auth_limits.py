"""Authentication, problem documents, and the 10-simultaneous-connections limit."""

from __future__ import annotations

import threading

import httpx
import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from tests.esp_sandbox.mailchimp.mc_helpers import API_KEY, PROBLEM


def test_ping_and_root(mc: httpx.Client) -> None:
    assert mc.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
    root = mc.get("/").json()
    assert {"account_id", "account_name", "total_subscribers", "_links"} <= set(root)


@pytest.mark.parametrize(
    ("auth", "status", "title"),
    [
        (None, 401, "API Key Missing"),
        (("user", "not-a-key"), 401, "API Key Invalid"),
        (("user", "0123456789abcdef0123456789abcdef"), 401, "API Key Invalid"),
        (("user", "0123456789abcdef0123456789abcdef-us6"), 403, "Forbidden"),
    ],
)
def test_bad_credentials_get_problem_documents(
    mc_server: SandboxServer, auth: tuple[str, str] | None, status: int, title: str
) -> None:
    response = httpx.get(mc_server.mailchimp_url + "/ping", auth=auth)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["title"] == title
    assert body["type"] == "https://mailchimp.com/developer/marketing/docs/errors/"
    assert body["instance"]


def test_any_username_works(mc_server: SandboxServer) -> None:
    response = httpx.get(mc_server.mailchimp_url + "/ping", auth=("whatever", API_KEY))
    assert response.status_code == 200


def test_configured_keys_and_oauth_tokens() -> None:
    config = SandboxConfig(mailchimp_api_keys={API_KEY}, mailchimp_dc="us1")
    config.mailchimp_oauth_tokens = {"oauth-token-1"}  # type: ignore[attr-defined]
    with SandboxServer(config) as server:
        url = server.mailchimp_url + "/ping"
        assert httpx.get(url, auth=("u", API_KEY)).status_code == 200
        other = "f" * 32 + "-us1"
        assert httpx.get(url, auth=("u", other)).status_code == 401
        bearer = {"Authorization": "Bearer oauth-token-1"}
        assert httpx.get(url, headers=bearer).status_code == 200
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(url, headers=wrong).status_code == 401


def test_unknown_path_and_wrong_method_are_problem_documents(mc: httpx.Client) -> None:
    missing = mc.get("/no/such/thing")
    assert (missing.status_code, missing.json()["title"]) == (404, "Resource Not Found")
    wrong = mc.delete("/ping")
    assert (wrong.status_code, wrong.json()["title"]) == (405, "Method Not Allowed")


def _concurrent_pings(server: SandboxServer, n: int, key: str = API_KEY) -> list[httpx.Response]:
    barrier = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def ping() -> None:
        barrier.wait()
        response = httpx.get(server.mailchimp_url + "/ping", auth=("u", key), timeout=10)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=ping) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_eleventh_simultaneous_connection_gets_429(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    httpx.post(mc_server.url + "/_sandbox/mailchimp/latency", json={"seconds": 1.5})
    results = _concurrent_pings(mc_server, 11)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 10 + [429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["title"] == "Too Many Requests"
    assert "10 simultaneous connections" in refused.json()["detail"]
    connections = mc_server.state()["mailchimp"]["connections"]
    assert connections["peak"] == 10
    assert connections["refused"] == 1
    assert connections["in_flight"] == 0


def test_ten_simultaneous_connections_are_fine_and_limit_is_per_key(
    mc: httpx.Client, mc_server: SandboxServer
) -> None:
    httpx.post(mc_server.url + "/_sandbox/mailchimp/latency", json={"seconds": 0.5})
    assert {r.status_code for r in _concurrent_pings(mc_server, 10)} == {200}
    barrier_keys = [API_KEY] * 10 + ["a" * 32 + "-us1"]
    results: list[int] = []

    def ping(key: str) -> None:
        response = httpx.get(mc_server.mailchimp_url + "/ping", auth=("u", key), timeout=10)
        results.append(response.status_code)

    threads = [threading.Thread(target=ping, args=(k,)) for k in barrier_keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 11
