"""The config file: strict keys, env references, errors that name file and key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync.config import ConfigError, load_config, parse_config

BASE = {
    "sources": {"events": {"type": "segment", "path": "data/"}},
    "destinations": {
        "klaviyo": {"type": "klaviyo", "api_key": "${TEST_KLAVIYO_KEY}"},
    },
    "syncs": {"main": {"source": "events", "destinations": ["klaviyo"]}},
}


def test_env_reference_becomes_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_live_secret_123")
    config = parse_config(BASE)
    key = config.destinations["klaviyo"].api_key
    assert key is not None and key.get_secret_value() == "pk_live_secret_123"
    assert "pk_live_secret_123" not in repr(config)
    assert "pk_live_secret_123" not in str(config.model_dump())


def test_missing_env_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_KLAVIYO_KEY", raising=False)
    with pytest.raises(
        ConfigError, match=r"destinations\.klaviyo\.api_key: environment variable TEST_KLAVIYO_KEY"
    ):
        parse_config(BASE)


def test_unknown_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_x")
    data = {
        **BASE,
        "syncs": {"main": {"source": "events", "destinations": ["klaviyo"], "batchsize": 5}},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "espbridge.toml")
    assert "espbridge.toml" in str(info.value)
    assert "syncs.main.batchsize: unknown key" in str(info.value)


def test_wrong_type_names_path_and_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_x")
    data = {
        **BASE,
        "syncs": {"main": {"source": "events", "destinations": ["klaviyo"], "batch_size": "many"}},
    }
    with pytest.raises(
        ConfigError, match=r"syncs\.main\.batch_size: Input should be a valid integer"
    ):
        parse_config(data)


def test_dangling_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_x")
    data = {**BASE, "syncs": {"main": {"source": "nope", "destinations": ["klaviyo"]}}}
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        parse_config(data)


def test_load_reports_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[state\nurl=1")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    for name in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", example.read_text())):
        monkeypatch.setenv(name, f"example-{name.lower()}")
    monkeypatch.setenv("MAILCHIMP_API_KEY", "0123456789abcdef0123456789abcdef-us1")
    config = load_config(example)
    assert config.syncs and config.triggers and config.sources and config.destinations
    assert {t.name for t in config.triggers} >= {
        "cart_abandoned",
        "browse_intent",
        "recent_purchase",
        "inactive_30d",
    }


def test_environment_overrides_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_from_file")
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY", "pk_from_env")
    monkeypatch.setenv("ESPBRIDGE__STATE__URL", "sqlite:///elsewhere.db")
    config = parse_config(BASE)
    key = config.destinations["klaviyo"].api_key
    assert key is not None and key.get_secret_value() == "pk_from_env"
    assert config.state.url == "sqlite:///elsewhere.db"
    assert config.sources["events"].type == "segment"
