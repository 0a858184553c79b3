"""The run report's `fallbacks`: per destination, action and field, how many records the
ESPs took with a declared fallback in them (through the engine, into the sandbox)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from sync.config import Config, parse_config
from sync.engine import SyncEngine
from sync.store.state import StateStore

MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "a1b2c3d4e5"
FAST_RETRY = {"initial_seconds": 0.01, "max_delay_seconds": 0.05}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=3)) as server:
        yield server


def _message(kind: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "messageId": f"{kind[0]}{n}",
        "timestamp": "2026-07-20T10:00:00Z",
        **extra,
    }


MESSAGES = [
    # No first name: Klaviyo's profile and Mailchimp's FNAME fall back to "there".
    _message("identify", 1, userId="u1", traits={"email": "ann@example.com"}),
    _message("identify", 2, userId="u2", traits={"email": "bo@example.com"}),
    # A first name: no fallback.
    _message("identify", 3, userId="u3", traits={"email": "cy@example.com", "first_name": "Cy"}),
    # Nobody to send to: rejected by Klaviyo's mapping, suppressed by Mailchimp (no
    # email); the fallback was resolved but never sent, so it is not counted.
    _message("identify", 4, anonymousId="a4", traits={"plan": "pro"}),
    # Klaviyo refuses the address (a 400): its fallback did not reach a profile. Mailchimp
    # rejects it while mapping.
    _message("identify", 6, userId="u6", traits={"email": "not-an-email"}),
    # No currency: the event falls back to USD.
    _message(
        "track",
        5,
        userId="u1",
        event="Product Viewed",
        properties={"price": 3},
        context={"traits": {"email": "ann@example.com"}},
    ),
]


def _config(tmp_path: Path, sandbox: SandboxServer) -> Config:
    source = tmp_path / "segment"
    source.mkdir(exist_ok=True)
    (source / "events.jsonl").write_text("\n".join(json.dumps(m) for m in MESSAGES) + "\n")
    return parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"web": {"type": "segment", "path": str(source)}},
            "destinations": {
                "klaviyo": {
                    "type": "klaviyo",
                    "api_key": "pk_fallbacks_0123456789",
                    "base_url": sandbox.klaviyo_url,
                    "actions": ["track_event", "upsert_profile"],
                    "retry": FAST_RETRY,
                    "mapping": {
                        "upsert_profile": {
                            "first_name": {"path": "traits.first_name", "fallback": "there"}
                        },
                        "track_event": {
                            "value_currency": {"path": "properties.currency", "fallback": "USD"}
                        },
                    },
                },
                "mc": {
                    "type": "mailchimp",
                    "api_key": MAILCHIMP_KEY,
                    "base_url": sandbox.mailchimp_url,
                    "list_id": LIST_ID,
                    "actions": ["upsert_member"],
                    "retry": FAST_RETRY,
                    "merge_fields": {
                        "FNAME": {"path": "traits.first_name", "fallback": "there"},
                    },
                },
            },
            "syncs": {"web": {"source": "web", "destinations": ["klaviyo", "mc"]}},
        }
    )


EXPECTED = {
    "klaviyo.upsert_profile.first_name": 2,
    "klaviyo.track_event.value_currency": 1,
    "mc.upsert_member.merge_fields.FNAME": 2,
}


def test_the_report_counts_each_fallback_sent_per_destination_action_and_field(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.reset()
    config = _config(tmp_path, sandbox)
    store = StateStore.open(config.state.url)

    report = asyncio.run(SyncEngine(config, store).run_sync("web"))

    assert report.status == "completed"
    assert report.counts["klaviyo.rejected.mapping"] == 1
    assert report.counts["klaviyo.rejected"] == 1
    assert report.counts["mc.suppressed.no_email"] == 1
    assert report.counts["mc.rejected.mapping"] == 1
    assert dict(report.fallbacks) == EXPECTED
    assert report.as_dict()["fallbacks"] == dict(sorted(EXPECTED.items()))
    [run] = store.runs(sync="web")
    assert {k: v for k, v in run["counts"].items() if k.startswith("fallbacks.")} == {
        f"fallbacks.{k}": v for k, v in EXPECTED.items()
    }
    # The fallback is what went out.
    state = sandbox.state()
    profiles = {p["email"]: p["attributes"] for p in state["klaviyo"]["profiles"]}
    assert profiles["ann@example.com"]["first_name"] == "there"
    assert profiles["cy@example.com"]["first_name"] == "Cy"
    members = state["mailchimp"]["lists"][LIST_ID]["members"].values()
    assert sorted(m["merge_fields"]["FNAME"] for m in members) == ["Cy", "there", "there"]

    # A replay of the same messages sends nothing again, so counts no fallback again.
    replay = "\n".join(json.dumps(m) for m in MESSAGES) + "\n"
    (tmp_path / "segment" / "replay.jsonl").write_text(replay)
    again = asyncio.run(SyncEngine(config, store).run_sync("web"))
    assert again.counts["klaviyo.already_sent"] == 4 and again.counts["mc.already_sent"] == 3
    assert dict(again.fallbacks) == {}
    store.close()


def test_a_dry_run_counts_the_fallbacks_it_would_send(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.reset()
    config = _config(tmp_path, sandbox)
    store = StateStore.open(config.state.url)
    out = io.StringIO()

    report = asyncio.run(SyncEngine(config, store, dry_run_out=out).run_sync("web", dry_run=True))

    # Nothing answers a dry run with a 400: the bad address counts as it would be sent.
    assert report.dry_run
    assert dict(report.fallbacks) == {**EXPECTED, "klaviyo.upsert_profile.first_name": 3}
    assert '"first_name":"there"' in out.getvalue()
    assert sandbox.requests() == []
    store.close()
