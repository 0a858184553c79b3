"""The documented config (config.example.toml) loads and builds a Mailchimp destination."""

from __future__ import annotations

import tomllib
from pathlib import Path

from connectors.mailchimp import MailchimpDestination
from sync.config import parse_config
from tests.connectors.mailchimp.mc_testkit import API_KEY

DOC = Path(__file__).resolve().parents[3] / "config.example.toml"


def test_documented_config_is_valid() -> None:
    documented = tomllib.loads(DOC.read_text(encoding="utf-8"))["destinations"]["mailchimp"]
    data = {"destinations": {"mailchimp": {**documented, "api_key": API_KEY}}}
    config = parse_config(data, str(DOC))
    dest = MailchimpDestination("mailchimp", config.destinations["mailchimp"])  # type: ignore[arg-type]
    assert sorted(dest.fields) == ["journey_trigger", "member_event", "tags", "upsert_member"]
    assert set(dest.settings.merge_fields) >= {"FNAME", "LNAME", "BIRTHDAY", "ADDRESS", "PHONE"}
