"""An alias from one user id to another, end to end: the ESPs update the existing person.

With `alias_previous_id = "user_id"` an alias renames the customer, and later sends carry
the new user id as Klaviyo's `external_id`. Klaviyo must then update the profile created
under the old id (found by its profile id or its email), not create a second one and not
reject the row; Mailchimp keys members by email, so its member is the same one throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from esp_sandbox.server import SandboxConfig, SandboxServer
from sync.config import parse_config
from sync.engine import SyncEngine
from sync.store.identity import identity_conflicts
from sync.store.state import StateStore

MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us1"
EMAIL = "ann@example.com"


def _config(tmp_path: Path, sandbox_url: str, bulk_threshold: int) -> dict[str, Any]:
    return {
        "state": {"url": f"sqlite:///{tmp_path}/state.db"},
        "sources": {"logs": {"type": "segment", "path": str(tmp_path / "logs")}},
        "identity": {"alias_previous_id": "user_id"},
        "destinations": {
            "klaviyo": {
                "type": "klaviyo",
                "api_key": "pk_alias_0123456789",
                "base_url": sandbox_url,
                "batch": {"bulk_threshold": bulk_threshold, "job_poll_seconds": 0.05},
            },
            "mailchimp": {
                "type": "mailchimp",
                "api_key": MAILCHIMP_KEY,
                "base_url": f"{sandbox_url}/3.0",
                "list_id": "a1b2c3d4e5",
            },
        },
        "syncs": {"web": {"source": "logs", "destinations": ["klaviyo", "mailchimp"]}},
    }


def _identify(n: int, user: str, stamp: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"m{n}",
        "userId": user,
        "timestamp": stamp,
        "traits": {"email": EMAIL, **traits},
    }


def _alias(n: int, previous: str, user: str, stamp: str) -> dict[str, Any]:
    return {
        "type": "alias",
        "messageId": f"m{n}",
        "previousId": previous,
        "userId": user,
        "timestamp": stamp,
    }


FIRST = [_identify(1, "A", "2026-01-05T10:00:00Z", first_name="Ann", plan="free")]
SECOND = [
    _alias(2, "A", "B", "2026-01-05T11:00:00Z"),
    _identify(3, "B", "2026-01-05T11:00:01Z", first_name="Annie", plan="pro"),
]


class World:
    """A sandbox, a state store and a segment folder; `run` appends a file and syncs."""

    def __init__(self, tmp_path: Path, sandbox: SandboxServer, bulk_threshold: int) -> None:
        self.tmp_path, self.sandbox = tmp_path, sandbox
        self.config = parse_config(_config(tmp_path, sandbox.url, bulk_threshold))
        self.store = StateStore.open(self.config.state.url)
        self.files = 0

    def run(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        folder = self.tmp_path / "logs"
        folder.mkdir(exist_ok=True)
        self.files += 1
        body = b"".join(orjson.dumps(m) + b"\n" for m in messages)
        (folder / f"{self.files:03d}.jsonl").write_bytes(body)
        report = asyncio.run(SyncEngine(self.config, self.store).run_sync("web"))
        return dict(report.counts)

    def klaviyo_profiles(self) -> list[dict[str, Any]]:
        profiles: list[dict[str, Any]] = self.sandbox.state()["klaviyo"]["profiles"]
        return [p for p in profiles if (p.get("email") or "").lower() == EMAIL]

    def conflicts(self) -> list[tuple[str, str]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(identity_conflicts.c.kind, identity_conflicts.c.value))
            return [(kind, value) for kind, value in rows]

    def mailchimp_members(self) -> list[tuple[str, dict[str, Any]]]:
        """(subscriber hash, member) of every member with the email, in every audience."""
        lists = self.sandbox.state()["mailchimp"]["lists"]
        members = [m for audience in lists.values() for m in audience["members"].items()]
        return [(h, m) for h, m in members if m["email_address"].lower() == EMAIL]


SINGLE, BULK = 20, 1
"""`batch.bulk_threshold`: one profile goes by `profile-import`, or by a bulk import job."""


def _world(tmp_path: Path, bulk_threshold: int) -> Iterator[World]:
    with SandboxServer(SandboxConfig(seed=7)) as sandbox:
        made = World(tmp_path, sandbox, bulk_threshold)
        try:
            yield made
        finally:
            made.store.close()


@pytest.fixture(params=[SINGLE, BULK], ids=["profile-import", "bulk import job"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, request.param)


@pytest.fixture
def single_world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, SINGLE)


@pytest.fixture
def bulk_world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, BULK)


def _no_rejects(counts: dict[str, Any]) -> None:
    rejected = {k: v for k, v in counts.items() if "rejected" in k and v}
    assert not rejected, counts


def test_an_alias_renames_the_klaviyo_profile_instead_of_making_a_second(world: World) -> None:
    _no_rejects(world.run(FIRST))
    [before] = world.klaviyo_profiles()
    assert before["external_id"] == "A"

    counts = world.run(SECOND)

    _no_rejects(counts)
    assert not world.store.rejects(sync="web")
    [after] = world.klaviyo_profiles()
    assert after["id"] == before["id"]
    assert after["external_id"] == "B"
    assert after["attributes"]["first_name"] == "Annie"
    assert after["properties"]["plan"] == "pro"


DEVICE = {**SECOND[1], "type": "track", "event": "Viewed", "messageId": "t1", "traits": {}}
"""The new user id, seen first on a device without the email (its own Klaviyo profile)."""
BEFORE_ALIAS = [*FIRST, {**DEVICE, "timestamp": "2026-01-05T10:30:00Z"}]


def test_the_new_id_s_own_profile_takes_no_traits_meant_for_the_customer(
    single_world: World,
) -> None:
    # The rename's identify went to the device's profile (which holds external id B), not
    # to the customer's own (with the email), and its id was learned as a second Klaviyo
    # id for the customer: an identity conflict.
    world = single_world
    world.run(BEFORE_ALIAS)
    [before] = world.klaviyo_profiles()

    counts = world.run(SECOND)

    _no_rejects(counts)
    [after] = world.klaviyo_profiles()
    assert after["id"] == before["id"]
    assert after["attributes"]["first_name"] == "Annie"
    assert after["properties"]["plan"] == "pro"
    assert world.conflicts() == []


def test_a_bulk_row_whose_new_id_has_its_own_profile_is_not_rejected(bulk_world: World) -> None:
    # The bulk job refused the row (external_id belongs to another profile) and the
    # identify came back as a rejected row; now it goes again as a single upsert.
    world = bulk_world
    world.run(BEFORE_ALIAS)

    counts = world.run(SECOND)

    _no_rejects(counts)
    assert not world.store.rejects(sync="web")
    assert len(world.klaviyo_profiles()) == 1
    assert len(world.sandbox.state()["klaviyo"]["profiles"]) == 2  # no third one


def test_an_alias_keeps_the_one_mailchimp_member(world: World) -> None:
    world.run(FIRST)
    [(before, _)] = world.mailchimp_members()

    _no_rejects(world.run(SECOND))

    [(after, member)] = world.mailchimp_members()
    assert after == before
    assert member["merge_fields"].get("FNAME") == "Annie"
