"""`[destinations.<name>.mapping.<action>]` keys must be fields of the action: a typo, or
a field of another action, is a config error naming the key path and the action's fields."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.base import Record
from connectors.klaviyo.actions import ACTIONS
from sync.cli import app
from sync.config import ConfigError, load_config, parse_config
from sync.engine import SyncEngine
from sync.store.state import StateStore

from .testkit import destination, message

# The example README's "Field mapping" section showed: none of these is a track_event field.
README_EXAMPLE = """
[destinations.klaviyo.mapping.track_event]
email      = { path = ["traits.email", "context.traits.email"], transform = ["trim", "lower"] }
phone      = { path = "traits.phone", transform = ["e164:US"] }
first_name = { path = ["traits.first_name", "context.traits.first_name"], fallback = "there" }
value      = { path = ["properties.revenue", "properties.total"], transform = ["to_number"] }
order_day  = { path = "timestamp", transform = ["date:%Y-%m-%d"] }
sku        = "properties.products[0].sku"      # shorthand for { path = ... }
"""

# The same intent, with the actions' real field names.
CORRECTED_EXAMPLE = """
[destinations.klaviyo.mapping.track_event]
email          = { path = ["traits.email", "context.traits.email"], transform = ["trim", "lower"] }
phone_number   = { path = ["traits.phone", "context.traits.phone"], transform = ["e164:US"] }
value          = { path = ["properties.revenue", "properties.total"], transform = ["to_number"] }
value_currency = { path = "properties.currency", fallback = "USD" }
time           = "properties.purchased_at"      # shorthand for { path = ... }

[destinations.klaviyo.mapping.upsert_profile]
first_name = { path = ["traits.first_name", "context.traits.first_name"], fallback = "there" }
"""

HEAD = """
[state]
url = "sqlite:///{state}"

[sources.web]
type = "segment"
path = "{source}"

[destinations.klaviyo]
type = "klaviyo"
api_key = "pk_mapping_0123456789"

[syncs.web]
source = "web"
destinations = ["klaviyo"]
"""


def _config_file(tmp_path: Path, mapping: str) -> Path:
    source = tmp_path / "segment"
    source.mkdir(exist_ok=True)
    path = tmp_path / "espbridge.toml"
    head = HEAD.format(state=tmp_path / "state.db", source=source)
    path.write_text(head + mapping)
    return path


def _klaviyo(mapping: dict[str, Any]) -> dict[str, Any]:
    return {"destinations": {"klaviyo": {"type": "klaviyo", "api_key": "pk_x", "mapping": mapping}}}


def test_the_readme_example_is_refused_naming_every_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, README_EXAMPLE))
    error = str(caught.value)
    where = "destinations.klaviyo.mapping.track_event"
    for key in ("phone", "first_name", "order_day", "sku"):
        assert f"{where}.{key}: unknown field; expected one of 'anonymous_id', 'email'" in error
    assert "'phone_number'" in error and "'metric_name'" in error and "'value_currency'" in error
    assert "('first_name' is a field of upsert_profile)" in error
    for known in ("email", "value"):
        assert f"{where}.{known}:" not in error


def test_check_exits_2_on_an_unknown_mapping_key(tmp_path: Path) -> None:
    path = _config_file(tmp_path, README_EXAMPLE)
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert "mapping.track_event.order_day: unknown field" in result.output


@pytest.mark.parametrize(
    ("action", "key", "hint"),
    [
        ("upsert_profile", "firstname", None),
        ("upsert_profile", "location.lat", None),
        ("subscribe", "value", "track_event, placed_order"),
        ("unsubscribe", "channels", "subscribe"),
        ("track_event", "products", "placed_order"),
    ],
)
def test_a_key_the_action_lacks_is_refused(action: str, key: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_klaviyo({action: {key: "traits.x"}}))
    [line] = [x for x in str(caught.value).splitlines() if "unknown field" in x]
    assert line.strip().startswith(f"destinations.klaviyo.mapping.{action}.{key}: unknown field")
    for field in sorted(ACTIONS[action].DEFAULTS):
        assert repr(field) in line
    if hint:
        assert f"is a field of {', '.join(sorted(hint.split(', ')))})" in line


def test_every_declared_field_of_every_action_is_accepted() -> None:
    mapping = {
        name: {f: {"path": [f]} for f in module.DEFAULTS} for name, module in ACTIONS.items()
    }
    settings = parse_config(_klaviyo(mapping)).destinations["klaviyo"]
    assert {a: set(f) for a, f in settings.mapping.items()} == {
        a: set(f) for a, f in mapping.items()
    }


def test_the_corrected_example_maps_every_field(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path, CORRECTED_EXAMPLE))
    settings = config.destinations["klaviyo"]
    dest = destination(mapping=settings.mapping)
    event = message(
        {
            "type": "track",
            "event": "Order Refunded",
            "messageId": "m-1",
            "userId": "u-1",
            "timestamp": "2026-07-20T10:00:00Z",
            "traits": {"email": "  Ann@Example.COM ", "phone": "(415) 555-0100"},
            "properties": {"total": "12.5", "purchased_at": "2026-07-19T08:00:00Z"},
        }
    )
    [record] = dest.map(event, None)
    assert isinstance(record, Record)
    fields = record.fields
    assert fields["profile"]["email"] == "ann@example.com"
    assert fields["profile"]["phone_number"] == "+14155550100"
    assert fields["value"] == 12.5 and fields["value_currency"] == "USD"
    assert fields["time"] == "2026-07-19T08:00:00.000Z"
    assert record.fallbacks == ("value_currency",)
    profile = message(
        {
            "type": "identify",
            "messageId": "i-1",
            "userId": "u-1",
            "timestamp": "2026-07-20T10:00:00Z",
            "traits": {"email": "ann@example.com"},
        }
    )
    [upsert] = dest.map(profile, None)
    assert isinstance(upsert, Record)
    assert upsert.fields["attributes"]["first_name"] == "there"
    assert upsert.fallbacks == ("first_name",)


def test_a_mapped_location_attribute_without_a_default_is_sent(tmp_path: Path) -> None:
    # latitude, longitude and address2 are Klaviyo location attributes no Segment trait
    # fills: declared without a default source, sent only when mapped.
    dest = destination(
        mapping={
            "upsert_profile": {
                "location.latitude": "context.location.latitude",
                "location.longitude": "context.location.longitude",
            }
        }
    )
    identify = {
        "type": "identify",
        "messageId": "i-2",
        "userId": "u-2",
        "timestamp": "2026-07-20T10:00:00Z",
        "traits": {"email": "bo@example.com", "address": {"city": "Leeds"}},
        "context": {"location": {"latitude": 53.8, "longitude": -1.55}},
    }
    [record] = destination().map(message(identify), None)
    assert isinstance(record, Record)
    assert record.fields["attributes"]["location"] == {"city": "Leeds"}
    [record] = dest.map(message(identify), None)
    assert isinstance(record, Record)
    assert record.fields["attributes"]["location"] == {
        "city": "Leeds",
        "latitude": 53.8,
        "longitude": -1.55,
    }


def test_a_dry_run_of_the_corrected_example_sends_the_mapped_values(tmp_path: Path) -> None:
    path = _config_file(tmp_path, CORRECTED_EXAMPLE)
    (tmp_path / "segment" / "events.jsonl").write_text(
        json.dumps(
            {
                "type": "track",
                "event": "Order Refunded",
                "messageId": "m-2",
                "userId": "u-2",
                "timestamp": "2026-07-20T10:00:00Z",
                "traits": {"email": "Bo@Example.com", "phone": "415 555 0101"},
                "properties": {"revenue": 7},
            }
        )
        + "\n"
    )
    config = load_config(path)
    store = StateStore.open(config.state.url)
    out = io.StringIO()
    report = asyncio.run(SyncEngine(config, store, dry_run_out=out).run_sync("web", dry_run=True))
    store.close()
    [request] = [json.loads(line) for line in out.getvalue().splitlines()]
    attributes = request["json"]["data"]["attributes"]
    assert attributes["value"] == 7 and attributes["value_currency"] == "USD"
    profile = attributes["profile"]["data"]["attributes"]
    assert profile["email"] == "bo@example.com" and profile["phone_number"] == "+14155550101"
    assert dict(report.fallbacks) == {"klaviyo.track_event.value_currency": 1}
