"""An `ESPBRIDGE__…` override replaces a `${VAR}` of the file: VAR need not be set then."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sync.cli import app
from sync.config import Config, ConfigError, load_config, parse_config

BASE: dict[str, Any] = {
    "sources": {"events": {"type": "segment", "path": "data/"}},
    "destinations": {"klaviyo": {"type": "klaviyo", "api_key": "${OVERRIDE_TEST_KEY}"}},
    "syncs": {"main": {"source": "events", "destinations": ["klaviyo"]}},
}


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERRIDE_TEST_KEY", raising=False)


def _key(config: Config) -> str:
    key = config.destinations["klaviyo"].api_key
    assert key is not None
    return key.get_secret_value()


def test_an_override_of_the_key_wins_over_an_unset_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY", "pk_override_1")
    assert _key(parse_config(BASE)) == "pk_override_1"


def test_an_override_of_the_section_as_json_wins_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO", json.dumps({"api_key": "pk_override_2"}))
    assert _key(parse_config(BASE)) == "pk_override_2"


def test_an_override_of_another_key_does_not_excuse_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__REVISION", "2026-07-15")
    with pytest.raises(ConfigError, match="OVERRIDE_TEST_KEY is not set"):
        parse_config(BASE)


def test_an_override_in_another_case_of_the_section_does_not_excuse_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Overrides are matched in lower case: they never reach `[destinations.Klaviyo]`.
    data = {
        **BASE,
        "destinations": {"Klaviyo": BASE["destinations"]["klaviyo"]},
        "syncs": {"main": {"source": "events", "destinations": ["Klaviyo"]}},
    }
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY", "pk_override_3")
    with pytest.raises(ConfigError, match=r"destinations\.Klaviyo\.api_key: environment variable"):
        parse_config(data)


def test_check_accepts_the_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
api_key = "${{OVERRIDE_TEST_KEY}}"
base_url = "http://127.0.0.1:1"
[destinations.klaviyo.retry]
max_attempts = 1
[syncs.main]
source = "events"
destinations = ["klaviyo"]
"""
    )
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY", "pk_override_1")
    assert _key(load_config(path)) == "pk_override_1"
    result = CliRunner().invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 3, result.output  # the closed port, not the config
    assert "not set" not in result.output and "pk_override_1" not in result.output
