"""`schedule = ""` is a config error, not a sync that `espbridge schedule` silently skips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync.cli import app
from sync.config import ConfigError, parse_config


def _data(**sync: Any) -> dict[str, Any]:
    return {
        "sources": {"events": {"type": "segment", "path": "data/"}},
        "destinations": {"klaviyo": {"type": "klaviyo", "api_key": "pk_x_123456"}},
        "syncs": {"main": {"source": "events", "destinations": ["klaviyo"], **sync}},
    }


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_schedule_is_an_error_naming_the_key_and_both_ways_out(blank: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_data(schedule=blank), "espbridge.toml")
    message = str(info.value)
    assert "syncs.main.schedule: is empty; use a cron expression" in message
    assert "remove the key for a sync that is only run by hand" in message


def test_no_schedule_key_is_a_sync_run_by_hand() -> None:
    assert parse_config(_data()).syncs["main"].schedule is None
    assert parse_config(_data(schedule="@hourly")).syncs["main"].schedule == "@hourly"


def test_schedule_command_refuses_a_blank_schedule(tmp_path: Path) -> None:
    path = tmp_path / "espbridge.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path}/state.db"
[sources.events]
type = "segment"
path = "{tmp_path}"
[destinations.klaviyo]
type = "klaviyo"
api_key = "pk_x_123456"
[syncs.forgotten]
source = "events"
destinations = ["klaviyo"]
schedule = ""
"""
    )
    # Alone, so that without the check this ends at once too ("no sync has a schedule").
    result = CliRunner().invoke(app, ["schedule", "--config", str(path)])
    assert result.exit_code == 2
    assert "syncs.forgotten.schedule: is empty" in result.stderr
