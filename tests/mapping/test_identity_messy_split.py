"""Property: messy spellings give the customers clean ones give, whatever order or split.

Extends `tests/sync/test_identity_split.py`: each message is drawn clean, then written
as real sources write it (numbers for ids, odd case and white space, `mailto:`,
invisible characters, phones in any format) with placeholders added where the clean
message has no value. The graph must not tell the two apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.identity import IdentitySettings
from mapping.message import parse_message
from mapping.types import Message
from sync.identity import IdentityResolver
from sync.store.state import StateStore
from tests.sync.identity_helpers import partition

T0 = datetime(2026, 1, 1, tzinfo=UTC)

SPELLINGS: dict[str, list[Any]] = {
    "u1": ["u1", " u1", "u1\u200b", "\ufeffu1"],
    "123": ["123", 123, 123.0, " 123 "],
    "a1": ["a1", "a1 ", "\u200ba1"],
    "a2": ["a2", "\u00a0a2"],
    "a3": ["a3"],
    "e1@x.com": ["e1@x.com", "E1@X.com ", "mailto:e1@x.com", "e1@x.com.", "e1@x.com\u200b"],
    "e2@bücher.de": ["e2@bücher.de", "E2@BÜCHER.DE", "e2@xn--bcher-kva.de"],
    "e3@x.com": ["e3@x.com", "\te3@x.com\r\n", "MAILTO:E3@X.COM"],
    "+14155550100": ["+14155550100", "+1 (415) 555-0100", "415.555.0100", 4155550100],
    "+14155550101": ["+14155550101", "tel:+1-415-555-0101", "(415) 555-0101 ext. 9"],
}
PLACEHOLDERS = ["null", "(null)", "<nil>", "-", "\u200b", "00000000-0000-0000-0000-000000000000"]
JUNK_EMAILS = ["null@null.com", "test@test.com ", "undefined@x.com", "n/a"]

USERS = st.none() | st.sampled_from(["u1", "123"])
ANONS = st.none() | st.sampled_from(["a1", "a2", "a3"])
EMAILS = st.none() | st.sampled_from(["e1@x.com", "e2@bücher.de", "e3@x.com"])
PHONES = st.none() | st.sampled_from(["+14155550100", "+14155550101"])
RULES = IdentitySettings(
    phone_default_region="US", limits={"user_id": 1, "email": 2, "phone": 1, "anonymous_id": 2}
)
UNLIMITED = IdentitySettings(phone_default_region="US", limits={})


@st.composite
def clean_and_messy(draw: st.DrawFn) -> tuple[list[Message], list[Message]]:
    """The same messages twice: with clean values, and as a messy source sends them."""
    clean, messy = [], []
    for n in range(draw(st.integers(min_value=1, max_value=12))):
        values = {
            "userId": draw(USERS),
            "anonymousId": draw(ANONS),
            "email": draw(EMAILS),
            "phone": draw(PHONES),
        }
        if values["userId"] is None and values["anonymousId"] is None:
            values["anonymousId"] = "a1"
        kind = draw(st.sampled_from(["track", "identify", "alias"]))
        previous = draw(st.sampled_from(["a1", "a2", "a3"])) if kind == "alias" else None
        minutes = draw(st.integers(min_value=0, max_value=5))
        messy_values = {
            key: draw(st.sampled_from(SPELLINGS[value])) if value is not None else None
            for key, value in values.items()
        }
        for key, junk in (
            ("anonymousId", PLACEHOLDERS),
            ("email", JUNK_EMAILS),
            ("phone", PLACEHOLDERS),
        ):
            if messy_values[key] is None and draw(st.booleans()):
                messy_values[key] = draw(st.sampled_from(junk))
        clean.append(_message(n, kind, values, previous, minutes))
        messy.append(_message(n, kind, messy_values, previous, minutes))
    return clean, messy


def _message(
    n: int, kind: str, values: dict[str, Any], previous: str | None, minutes: int
) -> Message:
    raw: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{n:04}",
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
    }
    for key in ("userId", "anonymousId"):
        if values[key] is not None:
            raw[key] = values[key]
    if previous is not None:
        raw["previousId"] = previous
    traits = {key: values[key] for key in ("email", "phone") if values[key] is not None}
    if kind == "track":
        raw["event"] = "Viewed"
        raw["context"] = {"traits": traits}
    elif kind == "identify":
        raw["traits"] = traits
    return parse_message(raw, f"test:{n}")


def customers(runs: list[list[Message]], rules: IdentitySettings) -> Any:
    """Who is who after the runs: the identifier partition, and the refused merges."""
    store = StateStore.open("sqlite:///:memory:")
    try:
        conflicts = set()
        for batch in runs:
            result = IdentityResolver(store, rules).resolve(batch)
            conflicts |= {
                (c.kind, c.value, c.customer_id, c.other_customer_id) for c in result.conflicts
            }
        return partition(store), conflicts
    finally:
        store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clean_and_messy(), st.data())
def test_messy_spellings_in_any_order_and_split_give_the_clean_customers(
    pair: tuple[list[Message], list[Message]], data: st.DataObject
) -> None:
    """With no limit reached, neither spelling, order nor split matters."""
    clean, messy = pair
    runs: list[list[Message]] = [[] for _ in range(3)]
    for message in messy:
        runs[data.draw(st.integers(0, 2))].append(message)
    runs = [data.draw(st.permutations(run)) for run in runs]
    assert customers(runs, UNLIMITED) == customers([clean], UNLIMITED)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clean_and_messy(), st.data())
def test_messy_spellings_split_in_event_order_give_the_clean_customers(
    pair: tuple[list[Message], list[Message]], data: st.DataObject
) -> None:
    """With limits, event time decides; spelling still never does."""
    clean, messy = pair
    ordered = sorted(messy, key=lambda m: (m.timestamp, m.message_id))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=3)))
    runs, start = [], 0
    for cut in [*cuts, len(ordered)]:
        runs.append(data.draw(st.permutations(ordered[start:cut])))
        start = cut
    assert customers(runs, RULES) == customers([data.draw(st.permutations(clean))], RULES)
