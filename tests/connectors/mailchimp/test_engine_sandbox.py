"""Through the real sync engine and Segment source into the sandbox, with faults on:
the intent log and the ledger give each event and journey trigger exactly once, and a
second run sends nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.mailchimp.hashing import subscriber_hash
from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from sync import engine as engine_module
from sync.config import Config, parse_config
from sync.engine import SyncEngine
from sync.store.state import StateStore
from tests.connectors.mailchimp.mc_testkit import API_KEY, LIST_ID

pytest.importorskip("connectors.segment.source")
FAULTS = "reset_after=0.08,reset_before@*/members/*=0.04,429=0.04,503=0.03"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=9)) as sandbox:
        yield sandbox


def _lines(people: int) -> list[str]:
    lines = []
    for i in range(people):
        email = f"run{i}@example.com"
        lines.append(
            {
                "type": "identify",
                "messageId": f"i{i}",
                "userId": f"u{i}",
                "timestamp": "2026-07-20T10:00:00Z",
                "traits": {"email": email, "first_name": f"R{i}"},
            }
        )
        for n in range(2):
            lines.append(
                {
                    "type": "track",
                    "messageId": f"e{i}-{n}",
                    "userId": f"u{i}",
                    "timestamp": "2026-07-20T10:00:01Z",
                    "event": "Viewed Product",
                    "properties": {"n": n},
                    "context": {"traits": {"email": email}},
                }
            )
        lines.append(
            {
                "type": "track",
                "messageId": f"c{i}",
                "userId": f"u{i}",
                "timestamp": "2026-07-20T10:00:02Z",
                "event": "Cart Abandoned",
                "context": {"traits": {"email": email}},
            }
        )
    return [json.dumps(line) for line in lines]


def _config(
    tmp_path: Path, server: SandboxServer, batch_size: int | None = 20, **mailchimp: Any
) -> Config:
    """One sync from `tmp_path/segment` into the sandbox's audience."""
    sync: dict[str, Any] = {"source": "events", "destinations": ["mc"]}
    if batch_size is not None:
        sync["batch_size"] = batch_size
    return parse_config(
        {
            "state": {"url": f"sqlite:///{tmp_path}/state.db"},
            "sources": {"events": {"type": "segment", "path": str(tmp_path / "segment")}},
            "destinations": {
                "mc": {
                    "type": "mailchimp",
                    "api_key": API_KEY,
                    "base_url": server.mailchimp_url,
                    "list_id": LIST_ID,
                    **mailchimp,
                }
            },
            "syncs": {"main": sync},
        }
    )


def test_engine_runs_are_exactly_once(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.segment.source import SegmentSource

    # sync.registry calls SegmentSource(name, settings); the source takes (settings, name).
    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: SegmentSource(s, name)
    )
    people = 15
    source = tmp_path / "segment"
    source.mkdir()
    (source / "events.jsonl").write_text("\n".join(_lines(people)) + "\n")
    config = _config(
        tmp_path,
        server,
        journeys={"Cart Abandoned": {"journey_id": 1, "step_id": 1}},
        retry={"initial_seconds": 0.01, "max_delay_seconds": 0.05, "max_attempts": 10},
    )
    server.reset()
    server.set_faults(FAULTS)
    store = StateStore.open(config.state.url)
    first = asyncio.run(SyncEngine(config, store).run_sync("main"))
    server.set_faults(None)
    assert first.status == "completed"
    before = len(server.requests())
    second = asyncio.run(SyncEngine(config, store).run_sync("main"))
    assert second.status == "completed"
    assert len(server.requests()) == before  # nothing acknowledged is sent again

    state = server.state()["mailchimp"]
    members = state["lists"][LIST_ID]["members"]
    for i in range(people):
        member = members[subscriber_hash(f"run{i}@example.com")]
        assert member["merge_fields"]["FNAME"] == f"R{i}"
        keys = Counter(
            e["properties"]["espbridge_key"]
            for e in member["events"]
            if e["name"] == "viewed_product"
        )
        assert keys == Counter({f"e{i}-0:member_event": 1, f"e{i}-1:member_event": 1})
    triggers = Counter(t["email"] for t in state["journey_triggers"])
    assert triggers == Counter({f"run{i}@example.com": 1 for i in range(people)})


def test_visitors_without_an_email_are_suppressed_not_rejects(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.segment.source import SegmentSource

    monkeypatch.setattr(
        engine_module, "build_source", lambda name, s, store=None: SegmentSource(s, name)
    )
    source = tmp_path / "segment"
    source.mkdir()
    anonymous = [
        {
            "type": "track",
            "messageId": f"anon{n}",
            "anonymousId": f"visitor-{n}",
            "timestamp": "2026-07-20T10:00:00Z",
            "event": "Viewed Product",
        }
        for n in range(8)
    ]
    lines = [json.dumps(line) for line in anonymous] + _lines(2)
    (source / "events.jsonl").write_text("\n".join(lines) + "\n")
    config = _config(tmp_path, server, batch_size=None)
    server.reset()
    store = StateStore.open(config.state.url)
    report = asyncio.run(SyncEngine(config, store).run_sync("main"))
    c = report.counts
    assert report.status == "completed" and report.rejected == 0
    assert c["mc.suppressed"] == c["mc.suppressed.no_email"] == 8
    assert c["mc.records"] == (
        c["mc.acknowledged"] + c["mc.suppressed"] + c.get("mc.rejected", 0)
    )  # the report's invariant holds with suppressions counted
    assert store.rejects(sync="main") == []  # nothing to fix: the ledger stays clean
    store.close()
