"""The sample dataset: determinism, layout, and the planted mess being really there."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.sample import generate
from connectors.segment.settings import SegmentSourceSettings
from connectors.segment.source import SegmentSource
from mapping.types import Message

EVENTS = 2000


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[Message]]:
    out = tmp_path_factory.mktemp("sample")
    manifest = generate(out, events=EVENTS, seed=42, warehouse_url=f"duckdb:///{out}/wh.duckdb")
    src = SegmentSource(SegmentSourceSettings(path=str(out / manifest["source_path"])))
    messages = [m for batch in src.read(None, batch_size=5000) for m in batch.messages]
    return out, manifest, messages


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", events=1000, seed=3)
    generate(tmp_path / "b", events=1000, seed=3)
    generate(tmp_path / "c", events=1000, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_layout_and_line_count(dataset: tuple[Path, dict[str, Any], list[Message]]) -> None:
    out, manifest, messages = dataset
    assert manifest["lines"] == EVENTS
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.gz"))
    assert files == sorted(f"{manifest['source_path']}/{f}" for f in manifest["files"])
    for name in files:  # segment-logs/<source-id>/<day-epoch-ms>/<n>.gz
        _, source_id, day, _file = name.split("/")
        assert source_id == manifest["source_id"] and len(day) == 13 and int(day) % 86_400_000 == 0
    assert len(messages) == EVENTS - manifest["counts"]["malformed"]


def test_planted_identity_mess(dataset: tuple[Path, dict[str, Any], list[Message]]) -> None:
    _, manifest, messages = dataset
    planted = manifest["planted"]
    by_anon: dict[str | None, list[Message]] = defaultdict(list)
    for m in messages:
        by_anon[m.anonymous_id].append(m)

    story = planted["anonymous_then_identified"]
    seen = sorted(by_anon[story["anonymous_id"]], key=lambda m: m.timestamp)
    assert seen[0].user_id is None and seen[0].type == "track"
    identify = next(m for m in seen if m.type == "identify")
    assert identify.user_id == story["user_id"] and identify.traits["email"] == story["email"]

    emails = {
        m.traits["email"]
        for m in messages
        if m.type == "identify" and m.user_id == planted["two_emails"]["user_id"]
    }
    assert emails == set(planted["two_emails"]["emails"])

    shared = planted["shared_device"]
    users = {m.user_id for m in by_anon[shared["anonymous_id"]] if m.type == "identify"}
    assert users == set(shared["user_ids"])

    junk = {m.user_id for m in by_anon[planted["junk_identifiers"]["anonymous_id"]]}
    assert {"null", "undefined", None} <= junk  # "" is read as no userId
    assert any(m.traits.get("email") == "test@test.com" for m in messages)

    ids = [m.message_id for m in messages]
    assert ids.count(planted["duplicate_message_id"]) == 2
    late = next(m for m in messages if m.message_id == planted["late_message_id"])
    assert late.raw["receivedAt"] > late.raw["timestamp"]
    received_day = late.source_ref.split("/")[0]
    assert int(received_day) - late.timestamp.timestamp() * 1000 > 86_400_000


def test_carts_views_and_email_lapse(dataset: tuple[Path, dict[str, Any], list[Message]]) -> None:
    _, manifest, messages = dataset
    events: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        cart = m.properties.get("cart_id")
        if cart:
            events[cart].add(m.event or "")
    for cart in manifest["planted"]["carts"]:
        assert ("Order Completed" in events[cart["cart_id"]]) == cart["ordered"]
        assert "Product Added" in events[cart["cart_id"]]
    for cart in manifest["samples"]["abandoned_carts"]:
        assert "Order Completed" not in events[cart["cart_id"]]
    orders = [m for m in messages if m.event == "Order Completed"]
    assert orders and all(m.properties["products"][0]["sku"] for m in orders)
    assert all({"order_id", "revenue", "currency"} <= m.properties.keys() for m in orders)

    repeat = manifest["planted"]["repeat_views"]
    views = sorted(
        m.timestamp
        for m in messages
        if m.user_id == repeat["user_id"] and m.properties.get("product_id") == repeat["product_id"]
    )
    assert len(views) == 3 and (views[-1] - views[0]).total_seconds() < 3600

    end = max(m.timestamp for m in messages)
    for user in manifest["planted"]["email_lapsed"]["user_ids"]:
        last_email = max(
            m.timestamp
            for m in messages
            if m.user_id == user and (m.event or "").startswith("Email")
        )
        assert (end - last_email).days >= 30


def test_warehouse_has_segment_tables(dataset: tuple[Path, dict[str, Any], list[Message]]) -> None:
    out, manifest, _ = dataset
    with duckdb.connect(str(out / "wh.duckdb"), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        assert {"identifies", "pages", "tracks", "order_completed", "product_added"} <= tables
        columns = {row[0] for row in con.execute("DESCRIBE order_completed").fetchall()}
        assert {"id", "received_at", "timestamp", "user_id", "anonymous_id", "event"} <= columns
        assert {"event_text", "order_id", "revenue", "products", "context_ip"} <= columns
        assert {"email", "first_name"} <= {
            r[0] for r in con.execute("DESCRIBE identifies").fetchall()
        }
        counts = manifest["warehouse_tables"]
        events = sum(
            v for k, v in counts.items() if k not in ("identifies", "pages", "aliases", "tracks")
        )
        assert counts["tracks"] == events
