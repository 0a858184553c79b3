"""Settings (the documented TOML parses) and rate tiers (spec, table, overrides)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.http import RateTier
from connectors.klaviyo import KlaviyoSettings
from connectors.klaviyo.limits import PUBLISHED_TIERS, load_spec_tiers, tier_for
from sync.config import expand_env

from .testkit import SPEC, need_shared

DOC = Path(__file__).resolve().parents[3] / "config.example.toml"


def test_the_documented_toml_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_doc_123456")
    documented = tomllib.loads(DOC.read_text())["destinations"]["klaviyo"]
    settings = KlaviyoSettings.model_validate(expand_env(documented))
    assert settings.revision == "2026-07-15"
    assert settings.api_key is not None and "pk_doc" not in repr(settings)


def test_unknown_actions_and_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown action"):
        KlaviyoSettings(actions=["send_sms"])
    with pytest.raises(ValidationError):
        KlaviyoSettings.model_validate({"api_kye": "pk_x"})


def test_tiers_come_from_the_spec_then_the_table_then_overrides() -> None:
    need_shared()
    spec = load_spec_tiers(str(SPEC))
    assert spec["create_event"] == RateTier(350, 3500)
    assert spec["bulk_create_events"] == RateTier(10, 150)
    assert tier_for("create_or_update_profile", spec, {}) == RateTier(75, 750)
    assert tier_for("create_or_update_profile", {}, {}) == PUBLISHED_TIERS["L"]
    assert tier_for("bulk_create_events", spec, {"M": RateTier(1, 2)}) == RateTier(1, 2)
    override = {"bulk_create_events": RateTier(5, 50)}
    assert tier_for("bulk_create_events", spec, override) == RateTier(5, 50)


@pytest.mark.parametrize(("region", "says"), [("UK", "the United Kingdom is GB"), ("USA", "ISO")])
def test_an_unknown_phone_default_region_is_a_config_error_naming_the_key(
    region: str, says: str
) -> None:
    from sync.config import ConfigError, parse_config

    with pytest.raises(ValidationError) as caught:
        KlaviyoSettings(phone_default_region=region)
    [error] = caught.value.errors()
    assert error["loc"] == ("phone_default_region",) and says in error["msg"]
    config = {
        "state": {"url": "sqlite:///:memory:"},
        "destinations": {"klaviyo": {"type": "klaviyo", "api_key": "pk_x"}},
    }
    config["destinations"]["klaviyo"]["phone_default_region"] = region  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"destinations\.klaviyo\.phone_default_region: .*"):
        parse_config(config)


def test_a_phone_default_region_is_read_as_the_iso_code() -> None:
    assert KlaviyoSettings(phone_default_region=" gb ").phone_default_region == "GB"
    assert KlaviyoSettings().phone_default_region is None
    assert KlaviyoSettings(phone_default_region="").phone_default_region is None  # documented
