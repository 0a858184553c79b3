"""Config errors as a user reads them: the key path they wrote, what was expected, no secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.config import ConfigError, load_config, parse_config

SECRET = "pk_live_do_not_print_42"


def _base(**destination: Any) -> dict[str, Any]:
    return {
        "sources": {"events": {"type": "segment", "path": "data/"}},
        "destinations": {"klaviyo": {"type": "klaviyo", "api_key": "pk_x_123456", **destination}},
        "syncs": {"main": {"source": "events", "destinations": ["klaviyo"]}},
    }


def _error(data: dict[str, Any], origin: str = "espbridge.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, origin)
    return str(info.value)


def test_typo_in_a_tagged_section_names_the_key_path_as_written() -> None:
    # Pydantic puts the section's `type` into the location: destinations.klaviyo.klaviyo.…
    message = _error(_base(baseurl="http://127.0.0.1:1"))
    assert "destinations.klaviyo.baseurl: unknown key" in message
    assert "klaviyo.klaviyo" not in message


def test_typo_in_a_source_names_the_key_path_as_written() -> None:
    data = _base()
    data["sources"]["events"] = {"type": "segment", "pth": "data/"}
    message = _error(data)
    assert "sources.events.pth: unknown key" in message
    assert "sources.events.path: Field required" in message
    assert "segment.p" not in message


def test_unknown_or_missing_type_names_the_type_key_and_the_choices() -> None:
    data = _base(type="klavio")
    data["sources"]["events"] = {"path": "data/"}
    message = _error(data)
    assert (
        "destinations.klaviyo.type: unknown type 'klavio'; expected one of 'klaviyo', 'mailchimp'"
        in message
    )
    assert "sources.events.type: missing; expected one of 'segment', 'warehouse', 'inbox'" in (
        message
    )


def test_dangling_reference_is_a_plain_line_that_lists_what_exists() -> None:
    data = _base()
    data["syncs"]["main"]["source"] = "evnets"
    message = _error(data)
    assert "  syncs.main.source: no source named 'evnets' (configured: events)" in message
    assert "(top level)" not in message and "Value error" not in message


def test_a_destination_listed_twice_in_a_sync_is_an_error() -> None:
    # It would be built twice and every record sent twice.
    data = _base()
    data["syncs"]["main"]["destinations"] = ["klaviyo", "klaviyo"]
    assert "syncs.main.destinations: 'klaviyo' listed twice" in _error(data)


def test_validator_messages_join_the_section_path() -> None:
    data = _base()
    data["destinations"]["mc"] = {"type": "mailchimp", "api_key": SECRET, "list_id": "L1"}
    message = _error(data)
    assert "destinations.mc.api_key: expected `<key>-<dc>`" in message
    assert "mailchimp" not in message.split("destinations.mc")[1].split(":")[0]
    assert SECRET not in message


def test_list_items_read_with_brackets() -> None:
    data = _base()
    data["triggers"] = [{"name": "x", "on": "Order Completed", "wiat": "1h"}]
    assert "triggers[0].wiat: unknown key" in _error(data)


def test_unset_variables_name_the_file_every_key_and_come_with_other_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ESPB_TEST_UNSET_KEY", raising=False)
    monkeypatch.delenv("ESPB_TEST_UNSET_URL", raising=False)
    data = _base(api_key="${ESPB_TEST_UNSET_KEY}", base_url="${ESPB_TEST_UNSET_URL}")
    data["syncs"]["main"]["batchsize"] = 5
    message = _error(data, "prod.toml")
    assert message.startswith("prod.toml: invalid config:")
    assert "destinations.klaviyo.api_key: environment variable ESPB_TEST_UNSET_KEY is not set" in (
        message
    )
    assert "destinations.klaviyo.base_url: environment variable ESPB_TEST_UNSET_URL" in message
    assert "syncs.main.batchsize: unknown key" in message


def test_an_unset_variable_in_a_typed_key_is_reported_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ESPB_TEST_UNSET_T", raising=False)
    message = _error(_base(timeout_seconds="${ESPB_TEST_UNSET_T}"))
    assert message.count("timeout_seconds") == 1
    assert "environment variable ESPB_TEST_UNSET_T is not set" in message


def test_a_secret_from_the_environment_never_appears_in_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPB_TEST_SECRET", SECRET)
    # Wrong places and wrong types for a secret: pydantic's input_value must not leak.
    data = _base(timeout_seconds="${ESPB_TEST_SECRET}", actions=["${ESPB_TEST_SECRET}"])
    data["destinations"]["klaviyo"]["oauth"] = {"client_id": 1, "client_secret": 5}
    data["destinations"]["mc"] = {"type": "mailchimp", "api_key": "${ESPB_TEST_SECRET}"}
    message = _error(data)
    assert "destinations.klaviyo.timeout_seconds" in message
    assert SECRET not in message


def test_a_bad_json_environment_override_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS", '{"x": ' + SECRET)
    message = _error(_base(), "espbridge.toml")
    assert "espbridge.toml: invalid environment override" in message
    assert (
        "ESPBRIDGE__DESTINATIONS or a ESPBRIDGE__DESTINATIONS__… variable: not valid JSON"
        in message
    )
    assert SECRET not in message


def test_toml_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "espbridge.toml"
    path.write_text('[state]\nurl = "sqlite:///x.db"\n[state]\nurl = "again"\n')
    with pytest.raises(ConfigError, match=r"espbridge\.toml: not valid TOML: .*line 3"):
        load_config(path)


def test_a_validator_that_echoes_its_input_never_shows_an_environment_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The transform validator quotes what it was given: a secret put there by mistake.
    monkeypatch.setenv("ESPB_TEST_SECRET", SECRET)
    mapping = {
        "track_event": {"email": {"path": "traits.email", "transform": "${ESPB_TEST_SECRET}"}}
    }
    message = _error(_base(mapping=mapping))
    assert "mapping.track_event.email.transform: unknown transform '${ESPB_TEST_SECRET}'" in message
    assert SECRET not in message


def test_an_override_value_echoed_by_a_validator_is_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__ACTIONS", f'["{SECRET}"]')
    message = _error(_base())
    assert (
        "destinations.klaviyo: unknown action '${ESPBRIDGE__DESTINATIONS__KLAVIYO__ACTIONS}'"
        in (message)
    )
    assert SECRET not in message


def test_an_override_of_a_capitalised_section_explains_the_lower_case_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _base()
    data["destinations"] = {"Klaviyo": data["destinations"]["klaviyo"]}
    data["syncs"]["main"]["destinations"] = ["Klaviyo"]
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY", SECRET)
    message = _error(data)
    assert "destinations.klaviyo.type: missing" in message
    assert "overrides match section names in lower case" in message
    assert SECRET not in message


def test_a_typo_in_a_section_written_only_by_overrides_names_the_key_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__EXTRA__TYPE", "klaviyo")
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__EXTRA__BASEURL", "http://127.0.0.1:1")
    message = _error(_base())
    assert "destinations.extra.baseurl: unknown key" in message
    assert "extra.klaviyo" not in message


def test_a_section_type_from_an_override_stays_legible_in_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESPBRIDGE__DESTINATIONS__KLAVIYO__TYPE", "klaviyo")
    data = _base()
    data["destinations"]["other"] = {"type": "klavio"}
    message = _error(data)
    assert "destinations.other.type: unknown type 'klavio'; expected one of 'klaviyo'," in message
