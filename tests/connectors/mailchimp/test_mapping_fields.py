"""Mailchimp's `[destinations.<name>.mapping.<action>]` keys: only the action's fields,
every unknown key reported at its path; merge fields have their own table, by tag."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Record
from connectors.mailchimp.destination import ACTIONS, MailchimpDestination
from sync.config import ConfigError, parse_config
from tests.connectors.mailchimp.mc_testkit import API_KEY, LIST_ID, message, settings


def _config(**mailchimp: Any) -> dict[str, Any]:
    section = {"type": "mailchimp", "api_key": API_KEY, "list_id": LIST_ID, **mailchimp}
    return {"destinations": {"mc": section}}


def test_every_unknown_key_is_reported_at_its_path_with_the_actions_fields() -> None:
    mapping = {
        "upsert_member": {"FNAME": "traits.first_name", "emial": "traits.email"},
        "member_event": {"language": "traits.language"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(mapping=mapping))
    lines = [x.strip() for x in str(caught.value).splitlines()[1:]]
    upsert = "'email', 'language', 'list_id'"
    event = "'email', 'list_id', 'name', 'occurred_at', 'properties'"
    assert lines == [
        f"destinations.mc.mapping.upsert_member.FNAME: unknown field; expected one of {upsert}"
        " (audience fields are mapped by merge tag under [destinations.<name>.merge_fields])",
        f"destinations.mc.mapping.upsert_member.emial: unknown field; expected one of {upsert}",
        f"destinations.mc.mapping.member_event.language: unknown field; expected one of {event}"
        " ('language' is a field of upsert_member)",
    ]


def test_every_declared_field_of_every_action_is_accepted() -> None:
    mapping = {name: {f: {"path": [f]} for f in module.FIELDS} for name, module in ACTIONS.items()}
    parsed = parse_config(_config(mapping=mapping)).destinations["mc"]
    assert {a: set(f) for a, f in parsed.mapping.items()} == {a: set(f) for a, f in mapping.items()}


def test_a_valid_override_and_merge_field_fallbacks_reach_the_record() -> None:
    dest = MailchimpDestination(
        "mc",
        settings(
            mapping={"upsert_member": {"email": {"path": "traits.work_email"}}},
            merge_fields={
                "FNAME": {"path": "traits.first_name", "fallback": "there"},
                "COMPANY": {"path": "traits.company", "fallback": "n/a"},
            },
        ),
    )
    traits = {"work_email": "Ann@Work.example", "company": "Acme"}
    out = dest.map(message({"type": "identify", "messageId": "m-1", "traits": traits}), None)
    [record] = [r for r in out if isinstance(r, Record) and r.action == "upsert_member"]
    assert record.fields["email"] == "ann@work.example"
    assert record.fields["merge_fields"] == {"FNAME": "there", "COMPANY": "Acme"}
    assert record.fallbacks == ("merge_fields.FNAME",)
