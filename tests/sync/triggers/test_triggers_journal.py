"""Cancel marks, the in-memory windows and the journal behind them.

Cancels reach pending instances as marks when observed; cancel and counted events of
recent hours stay in memory; older ones (an event far later than the lateness
contract), other engines' events and a restart's history come from the journal,
with the same decisions.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync.store.state import StateStore
from sync.store.triggers import to_micros
from sync.triggers import memory as trigger_memory
from tests.sync.triggers.timeline import at, engine, outcomes, run, track, triggers

CART: dict[str, Any] = {
    "name": "cart",
    "on": "Product Added",
    "key": "properties.cart_id",
    "cancel_on": ["Order Completed", "Product Added"],
    "wait": "30m",
    "emit": {"event": "Cart Abandoned"},
}
BROWSE: dict[str, Any] = {
    "name": "browse",
    "on": "Product Viewed",
    "count": {"min": 3, "within": "1h", "same": "properties.product_id"},
    "emit": {"event": "Browse Intent"},
}
HOURS = 60


def _late_day(minutes: float) -> Any:
    """An unrelated event that moves the newest event time (and memory) far ahead."""
    return track("Page Noise", minutes, user="zed", mid=f"noise{minutes}")


def test_an_instance_observed_before_its_cancel_is_marked_and_cancelled(
    store: StateStore,
) -> None:
    eng = engine(store, triggers(CART))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="a1")])
    run(eng, [track("Order Completed", 10, cart_id="k1", mid="o1")])
    run(eng, [_late_day(60)])
    assert outcomes(store) == {"cart/a1": ("cancelled", "cancel_event")}


def test_a_start_older_than_memory_still_finds_its_cancel_in_the_journal(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trigger_memory, "_MEMORY", timedelta(0))  # lateness + hold only
    eng = engine(store, triggers(CART))
    run(eng, [track("Order Completed", 10, cart_id="k1", mid="o1")])
    run(eng, [_late_day(2 * HOURS)])  # memory now starts after the order
    # A start far later than the lateness contract: decided late, but not blind.
    run(eng, [track("Product Added", 0, cart_id="k1", mid="a1"), _late_day(3 * HOURS)])
    assert eng._memory.cancels.covers(_span_at(0)) is False
    assert outcomes(store)["cart/a1"] == ("cancelled", "cancel_event")


def _span_at(minutes: int) -> Any:
    from sync.store.triggers import to_micros
    from sync.triggers.window import Span
    from tests.sync.triggers.timeline import at

    moment = to_micros(at(minutes))
    return Span("cart", "c-ann", "k1", moment, moment, "x")


def test_a_restarted_engine_loads_recent_cancels_from_the_journal(store: StateStore) -> None:
    run(engine(store, triggers(CART)), [track("Order Completed", 10, cart_id="k1", mid="o1")])
    again = engine(store, triggers(CART))  # a new process: memory is empty
    run(again, [track("Product Added", 5, cart_id="k1", mid="a1"), _late_day(60)])
    assert outcomes(store)["cart/a1"] == ("cancelled", "cancel_event")


def test_an_engine_sees_what_another_engine_journaled(store: StateStore) -> None:
    one, two = engine(store, triggers(CART)), engine(store, triggers(CART))
    run(two, [_late_day(0)])  # `two` has loaded its windows already
    run(one, [track("Order Completed", 10, cart_id="k1", mid="o1")])
    run(two, [track("Product Added", 5, cart_id="k1", mid="a1"), _late_day(60)])
    assert outcomes(store)["cart/a1"] == ("cancelled", "cancel_event")


def test_counted_views_older_than_memory_are_read_from_the_journal(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory of exactly lateness + hold, so a view two hours late reaches below it
    # while the journal (pruned every six hours of event time) still holds its window.
    monkeypatch.setattr(trigger_memory, "_COUNT_MEMORY", timedelta(0))
    eng = engine(store, triggers(BROWSE))
    views = [track("Product Viewed", m, product_id="p1", mid=f"v{m}") for m in (0, 20)]
    run(eng, views)
    run(eng, [_late_day(2 * HOURS)])
    assert not eng._memory.counted.covers("browse", to_micros(at(-30)))  # the window's start
    assert eng._memory.counted.events("browse", "c-ann", "p1") == {}  # forgotten
    sent = run(eng, [track("Product Viewed", 30, product_id="p1", mid="v30")])
    assert [e.message.raw["context"]["espbridge"]["start_message_id"] for e in sent] == ["v30"]


def test_a_replayed_batch_writes_one_journal_row_per_kind(store: StateStore) -> None:
    batch = [
        track("Product Viewed", 0, product_id="p1", mid="v0"),
        track("Order Completed", 1, cart_id="k1", mid="o1"),
    ]
    for _ in range(2):  # a crash before the batch commit: the batch is observed again
        run(engine(store, triggers(CART, BROWSE)), batch)
    with store.engine.connect() as conn:
        kinds = conn.exec_driver_sql("SELECT kind FROM trigger_journal ORDER BY kind").fetchall()
    assert [k for (k,) in kinds] == ["cancel", "count"]


def test_a_version_1_database_keeps_its_stored_cancels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = StateStore.open(url)
    run(engine(store, triggers(CART)), [track("Product Added", 0, cart_id="k1", mid="a1")])
    store.close()
    _downgrade_to_version_1(url, cancel=(10, "o1"))
    reopened = StateStore.open(url)
    try:
        run(engine(reopened, triggers(CART)), [_late_day(60)])
        assert outcomes(reopened)["cart/a1"] == ("cancelled", "cancel_event")
    finally:
        reopened.close()


def _downgrade_to_version_1(url: str, cancel: tuple[int, str]) -> None:
    """The layout version 1 wrote: no marks, cancels one row each in `trigger_cancels`."""
    from sync.store.triggers import to_micros
    from tests.sync.triggers.timeline import at

    engine_ = sa.create_engine(url)
    with engine_.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_trigger_instances_marked")
        for column in ("cancel_time", "cancel_message_id", "cancel_event", "cancel_also_start"):
            conn.exec_driver_sql(f"ALTER TABLE trigger_instances DROP COLUMN {column}")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 1")
        conn.exec_driver_sql(
            "CREATE TABLE trigger_cancels (trigger VARCHAR(100), customer_id VARCHAR(400), "
            "entity_key VARCHAR(400), event_time BIGINT, message_id VARCHAR(400), "
            "event VARCHAR(200), also_start BOOLEAN, "
            "PRIMARY KEY (trigger, customer_id, entity_key, event_time, message_id))"
        )
        conn.exec_driver_sql(
            "INSERT INTO trigger_cancels VALUES ('cart', 'c-ann', 'k1', ?, ?, "
            "'Order Completed', 0)",
            (to_micros(at(cancel[0])), cancel[1]),
        )
    engine_.dispose()
