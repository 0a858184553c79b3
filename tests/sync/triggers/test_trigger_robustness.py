"""Edge cases a marketer can write or a source can send: config errors, never crashes."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from mapping.message import parse_message
from mapping.types import Message
from sync.config import ConfigError, parse_config
from sync.store.state import StateStore
from sync.triggers import TriggerEngineSettings, TriggerSettings
from sync.triggers.cli import app
from sync.triggers.explain import list_decisions
from sync.triggers.schedule import quiet_hours_end
from sync.triggers.settings import QuietHours, parse_duration
from tests.sync.triggers.timeline import customers, engine, outcomes, run, track, triggers

EMIT = {"event": "E"}
NEW_YORK = ZoneInfo("America/New_York")
SEEDS = Path(__file__).resolve().parents[3] / "config.example.toml"


def _spec(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "on": "A", "emit": EMIT, **extra}


def _message(
    timestamp: str,
    mid: str = "m1",
    *,
    user: str = "ann",
    event: str = "A",
    context: dict[str, Any] | None = None,
    **properties: Any,
) -> Message:
    raw = {
        "type": "track",
        "event": event,
        "messageId": mid,
        "timestamp": timestamp,
        "userId": user,
        "properties": properties,
        "context": context or {},
    }
    return parse_message(raw, f"test:{mid}")


# durations ----------------------------------------------------------------------------


def test_a_huge_duration_is_a_config_error_not_an_overflow() -> None:
    # Was: OverflowError out of `load_config` (a traceback instead of a config error).
    with pytest.raises(ValidationError, match=r"wait\n.*duration too long"):
        TriggerSettings.model_validate(_spec(wait="99999999999d"))
    with pytest.raises(ValueError, match="duration too long"):
        parse_duration("36501d")
    assert parse_duration("36500d") == timedelta(days=36500)


@pytest.mark.parametrize("wait", [-60, -0.5, timedelta(minutes=-1)])
def test_a_negative_wait_is_a_config_error(wait: Any) -> None:
    # Was accepted: instances were due before their start event.
    with pytest.raises(ValidationError, match=r"wait\n.*cannot be negative"):
        TriggerSettings.model_validate(_spec(wait=wait))
    with pytest.raises(ValidationError, match=r"allowed_lateness\n.*cannot be negative"):
        TriggerEngineSettings.model_validate({"allowed_lateness": wait})


def test_a_wait_of_nan_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"wait\n.*not a duration"):
        TriggerSettings.model_validate(_spec(wait=float("nan")))


def test_zero_wait_and_odd_spellings_are_fine() -> None:
    assert TriggerSettings.model_validate(_spec(wait="0s")).wait == timedelta(0)
    assert TriggerSettings.model_validate(_spec(wait=" 1H 30M ")).wait == timedelta(minutes=90)
    assert TriggerSettings.model_validate(_spec(wait=90)).wait == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"cap": {"max": 1, "per": "0s"}}, "cap.per"),
        ({"freshness": "0s"}, "freshness"),
        ({"count": {"min": 2, "within": "0m"}}, "count.within"),
        (
            {"emit": {**EMIT, "recommendations": {"lookback": "0d"}}},
            "emit.recommendations.lookback",
        ),
    ],
)
def test_windows_of_zero_are_config_errors(extra: dict[str, Any], where: str) -> None:
    # Was accepted: a cap that never binds, a freshness that makes every send stale.
    with pytest.raises(ValidationError, match=rf"{where}\n.*longer than 0s"):
        TriggerSettings.model_validate(_spec(**extra))


def test_absence_of_zero_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"absence.for\n.*longer than 0s"):
        TriggerSettings.model_validate(
            {"name": "t", "absence": {"events": "Email Opened", "for": "0s"}, "emit": EMIT}
        )


def test_config_errors_name_the_trigger_index_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KLAVIYO_KEY", "pk_x")
    data = {
        "sources": {"events": {"type": "segment", "path": "data/"}},
        "destinations": {"klaviyo": {"type": "klaviyo", "api_key": "${TEST_KLAVIYO_KEY}"}},
        "syncs": {"main": {"source": "events", "destinations": ["klaviyo"]}},
        "triggers": [_spec(name="ok"), _spec(name="bad", wait="99999999999d")],
        "trigger_engine": {"global_cap": {"per": "0s"}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert "triggers[1].wait: duration too long" in str(caught.value)
    assert "trigger_engine.global_cap.per: must be longer than 0s" in str(caught.value)


# other keys -----------------------------------------------------------------------------


def test_quiet_hours_with_equal_start_and_end_are_a_config_error() -> None:
    # Was accepted and meant "never quiet": a marketer meaning "all day" sent at night.
    with pytest.raises(ValidationError, match="are equal"):
        TriggerSettings.model_validate(_spec(quiet_hours={"start": "21:00", "end": "21:00"}))


def test_a_blank_emitted_event_name_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"emit.event\n.*blank"):
        TriggerSettings.model_validate(_spec(emit={"event": "   "}))


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"key": "."}, "key.0"),
        ({"key": ["properties.cart_id", ""]}, "key.1"),
        ({"key": "properties.cart_id", "cancel_key": "$"}, "cancel_key.0"),
        ({"consent": ""}, "consent"),
        ({"count": {"min": 2, "within": "1h", "same": "."}}, "count.same"),
        ({"on": {"event": "A", "where": {".": 1}}}, r"on.0.where"),
        ({"emit": {"event": "E", "properties": {"x": {"path": ["a", "."]}}}}, "emit.properties"),
    ],
)
def test_unreadable_paths_are_config_errors(extra: dict[str, Any], where: str) -> None:
    # Was accepted: "." raised ValueError in the middle of a run; "" read the whole event.
    with pytest.raises(ValidationError, match=rf"{where}.*\n.*not a path"):
        TriggerSettings.model_validate(_spec(**extra))


def test_array_paths_are_accepted() -> None:
    spec = TriggerSettings.model_validate(
        _spec(key="properties.products[0].product_id", cancel_key="properties.products[].id")
    )
    assert spec.key == ["properties.products[0].product_id"]


# event times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["9999-12-31T23:59:00Z", "0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"]
)
def test_absurd_event_times_are_ignored_not_a_crash(store: StateStore, timestamp: str) -> None:
    # Was: OverflowError (due time, watermark or pruning cutoff) failing the whole run.
    quiet = {"start": "00:00", "end": "01:30", "default_timezone": "America/New_York"}
    specs = triggers(_spec(wait="30m", quiet_hours=quiet))
    eng = engine(store, specs, now=datetime(2026, 1, 1, tzinfo=UTC), allowed_lateness="5m")
    batch = [_message(timestamp)]
    eng.observe(batch, customers(batch))
    assert eng.due() == []
    assert eng.watermark() is None  # it did not move the watermark either
    assert eng.decisions_summary() == {"ignored.event_time": 1}
    assert list_decisions(store, include_pending=True) == []


def test_ordinary_old_and_future_events_still_count(store: StateStore) -> None:
    specs = triggers(_spec(wait="30m"))
    eng = engine(store, specs, now=datetime(2026, 1, 1, tzinfo=UTC))
    batch = [_message("1970-01-01T00:00:00Z", "old"), _message("2030-01-01T00:00:00Z", "new")]
    eng.observe(batch, customers(batch))
    assert eng.decisions_summary() == {"started": 2}


# quiet hours across DST ------------------------------------------------------------------


def test_quiet_hours_end_in_the_repeated_hour_never_moves_the_send_back() -> None:
    # New York falls back at 02:00 EDT on 2026-11-01: 01:00-02:00 happens twice. A send
    # planned at 01:15 EST (the second time round) was moved to 01:30 EDT, 45 minutes
    # before its planned time (and before a `wait = "0s"` start event).
    quiet = QuietHours.model_validate({"start": "00:00", "end": "01:30"})
    planned = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)  # 01:15 EST
    assert quiet_hours_end(planned, quiet, NEW_YORK) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    first_time = datetime(2026, 11, 1, 5, 15, tzinfo=UTC)  # 01:15 EDT
    assert quiet_hours_end(first_time, quiet, NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_quiet_hours_end_skipped_by_spring_forward_is_just_after_the_gap() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: a 02:30 end does not exist that day.
    quiet = QuietHours.model_validate({"start": "00:00", "end": "02:30"})
    for planned in (
        datetime(2026, 3, 8, 6, 15, tzinfo=UTC),
        datetime(2026, 3, 8, 6, 45, tzinfo=UTC),
    ):
        end = quiet_hours_end(planned, quiet, NEW_YORK)
        assert end.astimezone(NEW_YORK).hour == 3 and end > planned


def test_a_wait_of_zero_in_the_repeated_hour_is_due_after_its_start(store: StateStore) -> None:
    quiet = {"start": "00:00", "end": "01:30", "default_timezone": "UTC"}
    specs = triggers(_spec(wait="0s", quiet_hours=quiet))
    eng = engine(store, specs, now=datetime(2026, 11, 2, tzinfo=UTC))
    batch = [_message("2026-11-01T06:15:00Z", context={"timezone": "America/New_York"})]
    eng.observe(batch, customers(batch))
    [pending] = list_decisions(store, include_pending=True)
    assert pending.due_at >= pending.start_time


def test_the_seed_cart_is_not_stale_when_the_clocks_go_back_overnight(store: StateStore) -> None:
    # A cart added at 20:31 EDT on 2026-10-31 is due at 21:01, inside the quiet hours,
    # and delayed to 08:00 EST: 12 h 29 min after the add, because New York's clocks go
    # back that night. The seed's freshness was 12 h, so this cart was suppressed stale.
    seeds = tomllib.loads(SEEDS.read_text(encoding="utf-8"))
    [cart] = [t for t in seeds["triggers"] if t["name"] == "cart_abandoned"]
    eng = engine(store, triggers(cart), now=datetime(2026, 11, 1, 13, 5, tzinfo=UTC))
    add = _message("2026-11-01T00:31:00Z", "add", event="Product Added", cart_id="c1")
    later = _message("2026-11-01T13:01:00Z", "later", user="bob", event="Page Ping")
    eng.observe([add, later], customers([add, later], timezone="America/New_York"))
    [sent] = eng.due()
    assert sent.message.timestamp == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert outcomes(store) == {"cart_abandoned/add": ("fired", "fired")}


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "UTC/", "\x00", "a" * 5000])
def test_a_bad_time_zone_trait_falls_back_to_the_default(store: StateStore, zone: str) -> None:
    quiet = {"start": "00:00", "end": "23:00", "action": "suppress", "default_timezone": "UTC"}
    eng = engine(store, triggers(_spec(quiet_hours=quiet)))
    batch = [_message("2026-03-02T23:30:00Z")]
    eng.observe(batch, customers(batch, timezone=zone))
    [sent] = eng.due()
    assert sent.message.event == "E"
    assert outcomes(store) == {"t/m1": ("fired", "fired")}


# espbridge triggers ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["list"], ["explain", "c-ann"]])
def test_cli_rejects_a_limit_below_one(tmp_path: Path, command: list[str]) -> None:
    # Was: a negative LIMIT listed everything on SQLite and was an SQL error on PostgreSQL.
    config = tmp_path / "espbridge.toml"
    config.write_text("[state]\nurl = 'sqlite:///" + str(tmp_path / "s.db") + "'\n")
    result = CliRunner().invoke(app, [*command, "--config", str(config), "--limit", "-1"])
    assert result.exit_code == 2
    assert "--limit" in result.output


def test_cli_rejects_an_unknown_status(tmp_path: Path) -> None:
    # Was: `--status suppresed` printed "no trigger decisions match", as if none were.
    config = tmp_path / "espbridge.toml"
    config.write_text("[state]\nurl = 'sqlite:///" + str(tmp_path / "s.db") + "'\n")
    runner = CliRunner()
    result = runner.invoke(app, ["list", "--config", str(config), "--status", "suppresed"])
    assert result.exit_code == 2
    assert "use one of" in result.output
    ok = runner.invoke(app, ["list", "--config", str(config), "--status", "suppressed"])
    assert ok.exit_code == 0


def test_a_property_named_like_the_recommendations_is_a_config_error() -> None:
    # Was accepted, and the content block silently replaced the declared property.
    emit = {"event": "E", "properties": {"recommendations": "properties.x"}, "recommendations": {}}
    with pytest.raises(ValidationError, match="also the recommendations property"):
        TriggerSettings.model_validate(_spec(emit=emit))


# count triggers ------------------------------------------------------------------------------

COUNTED = {
    "name": "b",
    "on": "Product Viewed",
    "count": {"min": 2, "within": "1h", "same": "properties.product_id"},
    "wait": "30m",
    "cancel_on": "Order Completed",
    "emit": EMIT,
}


@pytest.mark.parametrize("split", [False, True])
def test_a_counted_trigger_without_key_is_cancelled_by_any_exit_event(
    store: StateStore, split: bool
) -> None:
    # Was: the instance's entity was the `same` value, so the customer's keyless exit
    # events never matched it and it fired after an order.
    eng = engine(store, triggers(COUNTED))
    views = [track("Product Viewed", m, product_id="p1", mid=f"v{m}") for m in (0, 1)]
    later = [track("Order Completed", 10, mid="o1"), track("Page Viewed", 100)]
    if split:
        run(eng, views)
        run(eng, later)
    else:
        run(eng, views + later)
    assert outcomes(store) == {"b/v1": ("cancelled", "cancel_event")}


def test_a_counted_trigger_keyed_apart_from_what_it_counts_uses_its_key(
    store: StateStore,
) -> None:
    # Counted by product, keyed by cart: an order of that cart cancels, another does not.
    eng = engine(store, triggers({**COUNTED, "key": "properties.cart_id"}))
    batch = [
        track("Product Viewed", 0, user="ann", product_id="p1", cart_id="k1", mid="a0"),
        track("Product Viewed", 1, user="ann", product_id="p1", cart_id="k1", mid="a1"),
        track("Order Completed", 10, user="ann", cart_id="k1", mid="ao"),
        track("Product Viewed", 0, user="bob", product_id="p1", cart_id="k2", mid="b0"),
        track("Product Viewed", 1, user="bob", product_id="p1", cart_id="k2", mid="b1"),
        track("Order Completed", 10, user="bob", cart_id="other", mid="bo"),
        track("Page Viewed", 100),
    ]
    run(eng, batch)
    assert outcomes(store) == {
        "b/a1": ("cancelled", "cancel_event"),
        "b/b1": ("fired", "fired"),
    }
    [bob] = list_decisions(store, customer_id="c-bob")
    assert bob.entity_key == "k2"


def test_a_where_filter_on_a_boolean_does_not_match_numbers(store: StateStore) -> None:
    # Python's `False == 0`: `where = { "properties.paid" = false }` started on `paid: 0`,
    # and `[true]` on `1`.
    specs = triggers(
        _spec(name="unpaid", on={"event": "A", "where": {"properties.paid": False}}),
        _spec(name="paid", on={"event": "A", "where": {"properties.paid": [True]}}),
        _spec(name="one", on={"event": "A", "where": {"properties.paid": 1}}),
    )
    eng = engine(store, specs)
    batch = [
        track("A", 0, mid="zero", paid=0),
        track("A", 1, mid="false", paid=False),
        track("A", 2, mid="one-float", paid=1.0),
        track("A", 3, mid="true", paid=True),
        track("A", 4, mid="text", paid="false"),
    ]
    run(eng, batch)
    assert sorted(outcomes(store)) == ["one/one-float", "paid/true", "unpaid/false"]
