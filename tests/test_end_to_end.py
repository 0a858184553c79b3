"""The whole product on the demo's data: sample → sources → identity → triggers → ESPs.

The cart abandoners of the sample receive exactly one Cart Abandoned event in Klaviyo and
one journey trigger in Mailchimp; a customer who bought the cart receives none; a second
run sends nothing. The sample is anchored to end now because a trigger's freshness is
measured against the wall clock (a replay of old carts must never email anyone).
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.sample import generate
from esp_sandbox.server import SandboxConfig, SandboxServer
from sync.config import parse_config
from sync.engine import SyncEngine
from sync.store.state import StateStore

ROOT = Path(__file__).parents[1]
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us1"


def _config(tmp_path: Path, sandbox_url: str) -> dict[str, Any]:
    demo = tomllib.loads((ROOT / "examples" / "demo.toml").read_text())
    triggers = [t for t in demo["triggers"] if t["name"] in ("cart_abandoned", "cart_follow_up")]
    return {
        "state": {"url": f"sqlite:///{tmp_path}/state.db"},
        "sources": {"logs": {"type": "segment", "path": str(tmp_path / "sample" / "segment-logs")}},
        "destinations": {
            "klaviyo": {"type": "klaviyo", "api_key": "pk_e2e_0123456789", "base_url": sandbox_url},
            "mailchimp": {
                "type": "mailchimp",
                "api_key": MAILCHIMP_KEY,
                "base_url": f"{sandbox_url}/3.0",
                "list_id": "a1b2c3d4e5",
                "journeys": {"Cart Abandoned": {"journey_id": 1, "step_id": 1}},
            },
        },
        "syncs": {
            "web": {"source": "logs", "destinations": ["klaviyo", "mailchimp"], "batch_size": 500}
        },
        "trigger_engine": demo["trigger_engine"],
        "triggers": triggers,
    }


def _cart_events(state: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    emails = {p["id"]: p.get("email") for p in state["klaviyo"]["profiles"]}
    found = []
    for profile_id, per_metric in state["klaviyo"]["events"].items():
        for event in per_metric.get("Cart Abandoned", []):
            found.append((emails.get(profile_id), event["properties"]))
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("e2e")
    manifest = generate(
        tmp_path / "sample", events=3000, seed=42, end=datetime.now(UTC) - timedelta(minutes=10)
    )
    with SandboxServer(SandboxConfig(seed=1)) as sandbox:
        config = parse_config(_config(tmp_path, sandbox.url))
        store = StateStore.open(config.state.url)
        first = asyncio.run(SyncEngine(config, store).run_sync("web"))
        state_after_first = sandbox.state()
        second = asyncio.run(SyncEngine(config, store).run_sync("web"))
        state_after_second = sandbox.state()
        decisions = store.runs(sync="web")
        store.close()
    return {
        "manifest": manifest,
        "first": first,
        "second": second,
        "state": state_after_first,
        "state2": state_after_second,
        "runs": decisions,
    }


def test_planted_abandoners_get_one_cart_email_in_each_esp(world: dict[str, Any]) -> None:
    carts = world["manifest"]["planted"]["carts"]
    events = _cart_events(world["state"])
    by_cart = Counter(props.get("cart_id") for _email, props in events)
    triggers = Counter(t["email"] for t in world["state"]["mailchimp"]["journey_triggers"])
    for cart in carts:
        if cart["ordered"]:
            assert by_cart[cart["cart_id"]] == 0, f"{cart['cart_id']} was bought but got an email"
        else:
            assert by_cart[cart["cart_id"]] == 1, f"{cart['cart_id']} abandoned: expected one email"
            assert triggers[cart["email"]] == 1, f"{cart['email']}: expected one journey trigger"
    assert world["first"].triggers.get("fired", 0) >= 2


def test_no_cart_is_emailed_twice_anywhere(world: dict[str, Any]) -> None:
    events = _cart_events(world["state"])
    by_cart = Counter(props.get("cart_id") for _email, props in events)
    assert by_cart and max(by_cart.values()) == 1
    emails = [t["email"] for t in world["state"]["mailchimp"]["journey_triggers"]]
    assert len(emails) == len(world["state"]["mailchimp"]["journey_triggers"])
    assert len(emails) <= len(by_cart)


def test_second_run_sends_nothing(world: dict[str, Any]) -> None:
    assert world["second"].counts.get("read", 0) == 0
    assert world["state2"]["klaviyo"]["event_count"] == world["state"]["klaviyo"]["event_count"]
    assert (
        world["state2"]["mailchimp"]["journey_triggers"]
        == world["state"]["mailchimp"]["journey_triggers"]
    )


def test_counts_add_up_in_the_run_record(world: dict[str, Any]) -> None:
    counts = world["runs"][-1]["counts"]  # the first run (newest first)
    assert counts["read"] == counts["messages"] + counts["rejected.source"]
    for dest in ("klaviyo", "mailchimp"):
        parts = ("acknowledged", "rejected", "suppressed", "already_sent", "duplicate_in_batch")
        assert counts[f"{dest}.records"] == sum(counts.get(f"{dest}.{p}", 0) for p in parts)
