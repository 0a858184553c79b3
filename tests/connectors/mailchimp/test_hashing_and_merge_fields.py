"""SubscriberHash, settings, and merge field value conversion."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.mailchimp.hashing import is_plausible_email, subscriber_hash
from connectors.mailchimp.merge_fields import MergeFieldError, convert, is_valid_merge_tag
from connectors.mailchimp.settings import MailchimpSettings, MergeFieldSpec
from sync.config import ConfigError, parse_config
from tests.connectors.mailchimp.mc_testkit import API_KEY


def test_subscriber_hash_is_md5_of_lowercased_trimmed_email() -> None:
    expected = hashlib.md5(b"bob.dole@initech.com").hexdigest()
    assert subscriber_hash("  Bob.Dole@Initech.COM ") == expected
    assert expected == "48cd6232dc124497369f59c33d3eb4ab"  # the peer vectors' hash


@pytest.mark.parametrize(
    ("email", "plausible"),
    [("a@example.com", True), (" A@Example.com ", True), ("no-at-sign", False), ("a@b", False)],
)
def test_plausible_email(email: str, plausible: bool) -> None:
    assert is_plausible_email(email) is plausible


def test_data_center_comes_from_the_key_suffix_and_base_url_from_it() -> None:
    s = MailchimpSettings(api_key=API_KEY.replace("us1", "us19"), list_id="l")
    assert s.data_center == "us19"
    assert s.api_root == "https://us19.api.mailchimp.com/3.0"


def test_oauth_needs_a_data_center_and_exactly_one_credential() -> None:
    with pytest.raises(ValidationError, match="needs dc"):
        MailchimpSettings(oauth_token="tok", list_id="l")
    assert MailchimpSettings(oauth_token="tok", dc="us7", list_id="l").api_root.startswith(
        "https://us7."
    )
    with pytest.raises(ValidationError, match="exactly one"):
        MailchimpSettings(api_key=API_KEY, oauth_token="tok", list_id="l")


def test_key_without_dc_suffix_is_a_config_error_and_never_echoed() -> None:
    config = {
        "destinations": {"mc": {"type": "mailchimp", "api_key": "secretvalue123", "list_id": "l"}}
    }
    with pytest.raises(ConfigError, match="expected `<key>-<dc>`") as info:
        parse_config(config)
    assert "secretvalue123" not in str(info.value)
    assert "secretvalue" not in repr(MailchimpSettings(api_key=API_KEY, list_id="l"))


def test_unknown_action_in_mapping_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown action"):
        MailchimpSettings(api_key=API_KEY, list_id="l", mapping={"nope": {}})


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"type": "text"}, " Ann ", "Ann"),
        ({"type": "text"}, True, "true"),
        ({"type": "text"}, {"a": 1}, '{"a":1}'),
        ({"type": "number"}, "1,234.5", 1234.5),
        ({"type": "number"}, "42", 42),
        ({"type": "number"}, 7, 7),
        ({"type": "date", "date_format": "MM/DD/YYYY"}, "2000-05-06", "05/06/2000"),
        ({"type": "date", "date_format": "DD/MM/YYYY"}, "2000-05-06T10:00:00Z", "06/05/2000"),
        ({"type": "date"}, "2000-05-06", "2000-05-06"),
        ({"type": "birthday"}, "2000-05-06", "05/06"),
        ({"type": "birthday", "date_format": "DD/MM"}, "2000-05-06", "06/05"),
        ({"type": "birthday"}, "12/31", "12/31"),
        ({"type": "phone"}, "+1 415 555 0100", "+14155550100"),
        ({"type": "phone", "default_country": "GB"}, "020 7946 0018", "+442079460018"),
        ({"type": "phone", "phone_format": "US"}, "+1 415 555 0100", "(415) 555-0100"),
        (
            {"type": "address"},
            {"street": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701"},
            {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
        ),
        (
            {"type": "address", "default_country": "US"},
            {"addr1": "1 Main", "addr2": "Apt 2", "city": "X", "state": "Y", "zip": "1"},
            {
                "addr1": "1 Main",
                "addr2": "Apt 2",
                "city": "X",
                "state": "Y",
                "zip": "1",
                "country": "US",
            },
        ),
    ],
)
def test_convert_per_merge_field_type(spec: dict[str, Any], value: Any, expected: Any) -> None:
    assert convert("TAG", MergeFieldSpec(**spec), value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "reason"),
    [
        ({"type": "number"}, "abc", "expected a number"),
        ({"type": "number"}, True, "expected a number"),
        ({"type": "date"}, "yesterday", "ISO-8601 date"),
        ({"type": "phone"}, "call me", "not a phone number"),
        ({"type": "address"}, {"street": "1 Main", "city": "X"}, "missing state, zip"),
        ({"type": "address"}, "1 Main St", "address object"),
    ],
)
def test_unconvertible_values_name_the_merge_tag(
    spec: dict[str, Any], value: Any, reason: str
) -> None:
    with pytest.raises(MergeFieldError, match=reason) as info:
        convert("ADDRESS", MergeFieldSpec(**spec), value)
    assert str(info.value).startswith("merge_fields.ADDRESS:")


@pytest.mark.parametrize(
    ("tag", "valid"), [("FNAME", True), ("MMERGE10", True), ("TOOLONGTAG1", False), ("fn", False)]
)
def test_merge_tag_rule(tag: str, valid: bool) -> None:
    assert is_valid_merge_tag(tag) is valid


def test_a_misspelt_mapping_field_is_a_config_error_naming_the_key() -> None:
    config = {
        "destinations": {
            "mc": {
                "type": "mailchimp",
                "api_key": API_KEY,
                "list_id": "l",
                "mapping": {"member_event": {"nmae": "event"}},
            }
        }
    }
    with pytest.raises(ConfigError, match=r"mapping\.member_event\.nmae: unknown field"):
        parse_config(config)


@pytest.mark.parametrize(
    ("kind", "country", "says"),
    [
        ("address", "UK", "(the United Kingdom is GB)"),
        ("phone", "USA", "'USA' is not an ISO 3166 region"),
        ("address", "Germany", "'Germany' is not an ISO 3166 region"),
    ],
)
def test_an_unknown_default_country_is_a_config_error_naming_the_key_and_value(
    kind: str, country: str, says: str
) -> None:
    # Before, any string went to Mailchimp as the address country, or made every phone
    # without +code a reject.
    field = {"path": "traits.x", "type": kind, "default_country": country}
    config = {
        "destinations": {
            "mc": {
                "type": "mailchimp",
                "api_key": API_KEY,
                "list_id": "l",
                "merge_fields": {"FIELD": field},
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    [line] = [x.strip() for x in str(info.value).splitlines()[1:]]
    assert line.startswith("destinations.mc.merge_fields.FIELD.default_country: ")
    assert says in line


def test_a_default_country_is_read_as_the_iso_code() -> None:
    assert MergeFieldSpec(type="address", default_country=" gb ").default_country == "GB"
    assert MergeFieldSpec(type="phone", default_country="").default_country is None
    assert MergeFieldSpec(type="phone").default_country is None
    spec = MergeFieldSpec(type="address", default_country="de")
    address = {"addr1": "Unter den Linden 1", "city": "Berlin", "state": "BE", "zip": "10117"}
    assert convert("ADDRESS", spec, address)["country"] == "DE"  # as Mailchimp documents it
