"""Identity resolution fed real, messy Segment values.

The rules: a placeholder (`null`, `(null)`, `-`, the nil UUID, `null@null.com`, …) is
never an identifier, so it never merges two people; spellings of one id (`123` and
`"123"`, ` Ann@X.com `, `mailto:ann@x.com`, a zero-width space pasted along, a Unicode
domain) are one identifier; a value the store cannot hold is ignored rather than
failing the batch's write; identity settings that cannot work are config errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mapping.identity import IdentitySettings, Normalizer
from mapping.identity.values import MAX_VALUE_LENGTH
from mapping.message import parse_message
from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.state import StateStore
from tests.sync.identity_helpers import cid, msg, partition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def norm(**rules: Any) -> Normalizer:
    return Normalizer.of(IdentitySettings(**rules))


def raw_message(n: int, **fields: Any) -> Message:
    """Message n from raw Segment fields (any JSON types: numbers for ids, lists…)."""
    raw = {
        "type": "identify",
        "messageId": f"m{n:04}",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        **fields,
    }
    return parse_message(raw, f"test:{n}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


# junk ------------------------------------------------------------------------------

PLACEHOLDERS = [
    "NULL",
    "None",
    "nil",
    "undefined",
    "N/A",
    "0",
    "-",
    "--",
    "...",
    "  ",
    "\u200b",  # a zero-width space alone
    "\u200bnull\u200b",
    "\ufeffundefined",  # a byte-order mark in front
    "\u00a0None\u00a0",
    "(null)",  # C's printf
    "<nil>",  # Go's fmt
    "#N/A",  # spreadsheets
    '"null"',  # JSON encoded twice
    "[object Object]",
    "00000000",
    "00000000-0000-0000-0000-000000000000",  # the nil UUID: iOS's withheld device id
]


@pytest.mark.parametrize("kind", ["user_id", "anonymous_id", "email", "phone", "crm_id"])
@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders_are_never_identifiers(kind: str, value: str) -> None:
    assert norm(keys={"crm_id": ["traits.crm_id"]}).normalize(kind, value) is None


@pytest.mark.parametrize(
    "email",
    [
        "null@null.com",
        "NONE@none.com ",
        "undefined@myshop.com",
        "test@mycompany.com",
        "nan@x.com",
        "000@x.com",
        " TEST@test.com\u200b",
        "mailto:test@test.com",
        "test@test.com.",
    ],
)
def test_placeholder_addresses_are_junk(email: str) -> None:
    assert norm().normalize("email", email) is None


def test_placeholder_ids_never_merge_people(store: StateStore) -> None:
    """Each person sends every placeholder; they stay apart, and keep their real ids."""
    traits = {"email": "\u200bnull@null.com", "phone": "(null)"}
    batch = [
        raw_message(n, userId=user, anonymousId=placeholder, traits=traits)
        for user in ("u1", "u2")
        for n, placeholder in enumerate(PLACEHOLDERS, start=100 if user == "u2" else 0)
    ]
    result = IdentityResolver(store).resolve(batch)
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1")},
        cid("user_id", "u2"): {("user_id", "u2")},
    }
    assert result.conflicts == []


def test_a_message_with_only_placeholder_ids_is_unresolved(store: StateStore) -> None:
    result = IdentityResolver(store).resolve(
        [raw_message(1, userId="<nil>", anonymousId="00000000-0000-0000-0000-000000000000")]
    )
    assert result.unresolved == ["m0001"]
    assert partition(store) == {}


# look-alike blanks -----------------------------------------------------------------

LOOK_ALIKE_IDS = [
    "\u3164",  # Hangul filler: an "invisible name"
    "\uffa0",  # halfwidth Hangul filler
    "\u115f\u1160",  # Hangul choseong and jungseong fillers
    "\u3164\u3164\u3164",
    "\u3164null\u3164",
    "\u2800undefined",  # Braille blank in front of a placeholder
    "\uffa0(null)",
]


@pytest.mark.parametrize("kind", ["user_id", "anonymous_id", "crm_id"])
@pytest.mark.parametrize("value", LOOK_ALIKE_IDS)
def test_look_alike_blanks_are_never_identifiers(kind: str, value: str) -> None:
    # Before: "\u3164" was an id (a letter, to Unicode) that everyone pasting it shared.
    assert norm(keys={"crm_id": ["traits.crm_id"]}).normalize(kind, value) is None


def test_an_invisible_name_as_user_id_never_merges_people(store: StateStore) -> None:
    batch = [
        raw_message(1, userId="\u3164", anonymousId="a1", traits={"email": "ann@x.com"}),
        raw_message(2, userId="\u3164", anonymousId="a2", traits={"email": "bob@y.com"}),
    ]
    IdentityResolver(store).resolve(batch)
    assert set(partition(store).values()) == {
        frozenset({("anonymous_id", "a1"), ("email", "ann@x.com")}),  # two people
        frozenset({("anonymous_id", "a2"), ("email", "bob@y.com")}),
    }


@pytest.mark.parametrize(
    "spelling", ["\u3164ann@x.com", "ann@x.com\u2800", "\uffa0Ann@X.com\u3164", "ann@x\u3164.com"]
)
def test_an_email_with_look_alike_blanks_is_the_address(spelling: str) -> None:
    assert norm().identifier("email", spelling) == ("email", "ann@x.com")


# one identifier, many spellings ----------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "ann@x.com",
        " Ann@X.com ",
        "ANN@X.COM\n",
        "mailto:Ann@X.com",
        "MAILTO: ann@x.com",
        "ann@x.com.",
        "\u200bann@x.com",
        "ann@x.com\u200b",
        "\ufeffann@x.com\u00a0",
        "ann@x\u200b.com",  # invisible inside: never part of an address
    ],
)
def test_spellings_of_an_email_are_one_identifier(spelling: str) -> None:
    assert norm().identifier("email", spelling) == ("email", "ann@x.com")


@pytest.mark.parametrize(
    "spelling", ["ann@bücher.de", "Ann@BÜCHER.de", "ann@xn--bcher-kva.de", "ann@bücher.de."]
)
def test_a_unicode_domain_is_one_identifier_in_ascii(spelling: str) -> None:
    """Mail servers and ESPs take the punycode form; it passes the send-time check too."""
    assert norm().identifier("email", spelling) == ("email", "ann@xn--bcher-kva.de")


@pytest.mark.parametrize(
    "email",
    [
        "ann@straße.de",  # IDNA 2003 would make it strasse.de, another domain
        "änn@x.com",  # a Unicode local part: not valid address syntax here
        "Ann <ann@x.com>",
        "ann@x.com, bob@y.com",
        "ann@" + "ü" * 70 + ".de",  # a label too long for DNS
    ],
)
def test_addresses_that_cannot_be_compared_are_ignored(email: str) -> None:
    assert norm().normalize("email", email) is None


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+1 415 555 0100", None),
        ("+1 (415) 555-0100", None),
        ("+1-415-555-0100 ext. 12", None),
        ("tel:+14155550100", None),
        ("\u200b+1 415 555 0100", None),
        ("(415) 555-0100", "US"),
        ("415.555.0100", "US"),
        ("415-555-0100 x12", "US"),
        (4155550100, "US"),
        (14155550100, "US"),
        ("(415) 555-0100", "us"),  # the region is read case-blind
    ],
)
def test_phone_formats_are_one_e164_identifier(raw: object, region: str | None) -> None:
    assert norm(phone_default_region=region).identifier("phone", raw) == ("phone", "+14155550100")


@pytest.mark.parametrize("raw", ["(415) 555-0100", "4155550100", "0", "+1 (000) 000-0000"])
def test_numbers_without_country_code_or_invalid_are_ignored_without_a_region(raw: str) -> None:
    assert norm().normalize("phone", raw) is None


def test_a_phone_number_ignored_in_one_format_is_ignored_in_every_format() -> None:
    rules = norm(phone_default_region="US", ignore_values=["(212) 555-1212"])
    for spelling in ["(212) 555-1212", "+1 212-555-1212", "2125551212", "+12125551212"]:
        assert rules.normalize("phone", spelling) is None, spelling
    assert rules.normalize("phone", "+1 415 555 0100") == "+14155550100"


@pytest.mark.parametrize("raw", [123, 123.0, "123", " 123 ", "\u200b123", "123.0", "123.00"])
def test_a_numeric_user_id_is_the_same_identifier_as_its_text(raw: object) -> None:
    """`"123.0"` too: a float in JSON, or an integer column with gaps read by pandas."""
    assert norm().identifier("user_id", raw) == ("user_id", "123")


@pytest.mark.parametrize("raw", ["1.5", "v1.0", "1.0.0", "0123"])
def test_other_numeric_text_stays_as_written(raw: str) -> None:
    assert norm().identifier("user_id", raw) == ("user_id", raw)


@pytest.mark.parametrize("raw", [-1.0, "-1.0", "0.0", "-0"])
def test_a_placeholder_written_as_a_number_is_junk(raw: object) -> None:
    assert norm().normalize("user_id", raw) is None


@pytest.mark.parametrize(
    "raw", [True, False, float("nan"), float("inf"), -float("inf"), 10**600, [1], {"id": 1}]
)
def test_values_that_are_no_id_are_ignored_without_error(raw: object) -> None:
    assert norm().normalize("user_id", raw) is None


def test_numeric_and_text_ids_join_across_messages(store: StateStore) -> None:
    keys = {"crm_id": ["traits.crm_id"]}
    IdentityResolver(store, IdentitySettings(keys=keys)).resolve(
        [
            raw_message(1, userId=123, anonymousId="a1", traits={"crm_id": 42}),
            raw_message(2, userId=123.0, anonymousId="a2"),
            raw_message(3, anonymousId="a3", traits={"crm_id": "42", "email": "mailto:A@X.com"}),
            raw_message(4, anonymousId="a4", traits={"crm_id": 42.0, "email": "a@x.com."}),
        ]
    )
    assert partition(store) == {
        cid("user_id", "123"): {
            ("user_id", "123"),
            ("crm_id", "42"),
            ("email", "a@x.com"),
            *{("anonymous_id", f"a{n}") for n in range(1, 5)},
        }
    }


# values the store cannot hold ------------------------------------------------------


@pytest.mark.parametrize("value", ["u1\x00", "\x00", "u\ud800"])
def test_values_the_store_cannot_hold_are_ignored(value: str) -> None:
    assert norm().normalize("user_id", value) is None


def test_a_value_longer_than_the_limit_is_ignored_not_cut(store: StateStore) -> None:
    """Two values cut to one prefix would merge two people: too long is no identifier."""
    long_a, long_b = "a" * MAX_VALUE_LENGTH + "1", "a" * MAX_VALUE_LENGTH + "2"
    result = IdentityResolver(store).resolve(
        [
            raw_message(1, userId=long_a, anonymousId="d1"),
            raw_message(2, userId=long_b, anonymousId="d2"),
            raw_message(3, userId="b" * MAX_VALUE_LENGTH, traits={"email": "x" * 600 + "@x.com"}),
            raw_message(4, userId="c" * 10_000),
        ]
    )
    assert partition(store) == {
        cid("anonymous_id", "d1"): {("anonymous_id", "d1")},
        cid("anonymous_id", "d2"): {("anonymous_id", "d2")},
        cid("user_id", "b" * MAX_VALUE_LENGTH): {("user_id", "b" * MAX_VALUE_LENGTH)},
    }
    assert result.unresolved == ["m0004"]


@pytest.mark.postgres
def test_odd_values_never_fail_the_write_on_postgres(postgres_url: str) -> None:
    """PostgreSQL refuses NUL in text and over-long keys: such values never reach it."""
    pg = StateStore.open(postgres_url)
    try:
        widest = "ü" * MAX_VALUE_LENGTH  # the longest value, in two-byte characters
        IdentityResolver(pg).resolve(
            [
                raw_message(1, userId="pg-u1\x00", anonymousId="pg-a1"),
                raw_message(2, userId=widest, anonymousId="pg-a2"),
                raw_message(3, userId="pg-u3" * 200, anonymousId="pg-a3"),
            ]
        )
        held = {ident for ids in partition(pg).values() for ident in ids}
        assert {("anonymous_id", "pg-a1"), ("user_id", widest), ("anonymous_id", "pg-a3")} <= held
        assert not any("\x00" in value or value.startswith("pg-u3") for _, value in held)
    finally:
        pg.close()


# traits of other shapes ------------------------------------------------------------


def test_a_list_of_emails_gives_each_and_skips_what_is_not_an_address(store: StateStore) -> None:
    traits = {"email": ["A@x.com", ["b@x.com"], {"address": "c@x.com"}, 5, None, "null"]}
    result = IdentityResolver(store).resolve([raw_message(1, userId="u1", traits=traits)])
    assert partition(store) == {cid("user_id", "u1"): {("user_id", "u1"), ("email", "a@x.com")}}
    assert result.conflicts == []


def test_an_email_object_is_ignored(store: StateStore) -> None:
    traits = {"email": {"address": "a@x.com"}, "phone": {"number": "+14155550100"}}
    IdentityResolver(store).resolve([raw_message(1, userId="u1", traits=traits)])
    assert partition(store) == {cid("user_id", "u1"): {("user_id", "u1")}}


# aliases and limits ----------------------------------------------------------------


def test_an_alias_cycle_is_one_customer(store: StateStore) -> None:
    result = IdentityResolver(store).resolve(
        [
            msg(1, kind="alias", previous="a", anon="b"),
            msg(2, kind="alias", previous="b", anon="a"),
            msg(3, kind="alias", previous="a", anon="a"),
            msg(4, kind="identify", anon="b", user="u1"),
        ]
    )
    assert partition(store) == {
        cid("user_id", "u1"): {("user_id", "u1"), ("anonymous_id", "a"), ("anonymous_id", "b")}
    }
    assert result.conflicts == []
    assert {c.customer_id for c in result.customers.values()} == {cid("user_id", "u1")}


def test_a_device_shared_past_the_limit_records_both_sides(store: StateStore) -> None:
    rules = IdentitySettings(limits={"user_id": 1, "anonymous_id": 2})
    result = IdentityResolver(store, rules).resolve(
        [
            msg(1, kind="identify", user="u1", anon="d1"),
            msg(2, kind="identify", user="u1", anon="d2"),
            msg(3, kind="identify", user="u1", anon="d3"),  # a third device: refused
            msg(4, kind="identify", user="u2", anon="d1"),  # another user: refused
        ]
    )
    u1 = cid("user_id", "u1")
    assert partition(store) == {
        u1: {("user_id", "u1"), ("anonymous_id", "d1"), ("anonymous_id", "d2")},
        cid("anonymous_id", "d3"): {("anonymous_id", "d3")},
        cid("user_id", "u2"): {("user_id", "u2")},
    }
    sides = [
        (c.kind, c.value, c.limit_kind, c.customer_id, c.other_customer_id)
        for c in result.conflicts
    ]
    assert sides == [
        ("anonymous_id", "d3", "anonymous_id", u1, cid("anonymous_id", "d3")),
        ("anonymous_id", "d1", "user_id", cid("user_id", "u2"), u1),
    ]
    extra_device, shared = result.conflicts
    assert (dict(extra_device.customer), dict(extra_device.other)) == (
        {"user_id": ["u1"], "anonymous_id": ["d1", "d2"]},  # same hour: by value
        {"anonymous_id": ["d3"]},
    )
    assert (dict(shared.customer), dict(shared.other)) == (
        {"user_id": ["u2"]},
        {"user_id": ["u1"], "anonymous_id": ["d1", "d2"]},
    )


# settings that cannot work ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "field", "says"),
    [
        ({"phone_default_region": "UK"}, "phone_default_region", "GB"),
        ({"phone_default_region": "USA"}, "phone_default_region", "ISO 3166"),
        ({"keys": {"k" * 65: ["traits.k"]}}, "keys", "1 to 64 characters"),
        ({"keys": {" ": ["traits.k"]}}, "keys", "1 to 64 characters"),
        ({"keys": {"crm_id": ["["]}}, "keys", "crm_id: not a path"),
        ({"email_paths": ["traits.email", "..."]}, "email_paths", "not a path"),
        ({"phone_paths": ["["]}, "phone_paths", "not a path"),
    ],
)
def test_settings_that_cannot_work_are_config_errors(
    rules: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        IdentitySettings(**rules)
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert says in error["msg"]


def test_a_lower_case_region_is_read_as_the_iso_code() -> None:
    assert IdentitySettings(phone_default_region=" gb ").phone_default_region == "GB"
