"""Engine contract: restarts, idempotent observe, delivery marks, listing and explaining."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sync.store.state import StateStore
from sync.triggers.cli import app
from sync.triggers.engine import RECOVER_AFTER
from sync.triggers.explain import decision_counts, explain, list_decisions
from tests.sync.triggers.timeline import at, customers, engine, outcomes, track, triggers

CART: dict[str, Any] = {
    "name": "cart_abandoned",
    "on": "Product Added",
    "key": "properties.cart_id",
    "wait": "30m",
    "cancel_on": "Order Completed",
    "emit": {"event": "Cart Abandoned", "properties": {"cart_id": "properties.cart_id"}},
}


def test_observing_a_batch_twice_changes_nothing(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    batch = [track("Product Added", 0, cart_id="k1", mid="add")]
    eng.observe(batch, customers(batch))
    eng.observe(batch, customers(batch))  # the batch is read again after a crash
    late = [track("X", 40)]
    eng.observe(late, customers(late))
    assert len(eng.due()) == 1
    assert eng.decisions_summary() == {"fired": 1, "started": 2}


def test_an_emission_not_acknowledged_is_handed_out_again_after_a_restart(
    store: StateStore,
) -> None:
    batch = [track("Product Added", 0, cart_id="k1"), track("X", 40)]
    first = engine(store, triggers(CART))
    first.observe(batch, customers(batch))
    sent = first.due()
    assert len(sent) == 1
    assert first.due() == []  # the same engine hands it out once
    # Crash before `mark`: a new engine sends it again, with the same unique_id, once no
    # live engine can still have it in flight.
    later = at(24 * 60) + RECOVER_AFTER + timedelta(seconds=1)
    again = engine(store, triggers(CART), now=later).due()
    assert [e.instance_id for e in again] == [sent[0].instance_id]
    assert again[0].message.message_id == sent[0].message.message_id


def test_an_emission_in_flight_in_another_process_is_not_sent_twice(store: StateStore) -> None:
    # `serve` fired and handed out an emission; a `schedule` run's engine on the same
    # store, starting before `serve` acknowledged it, sent it too (found by the soak:
    # two requests with one trigger's unique_id).
    batch = [track("Product Added", 0, cart_id="k1"), track("X", 40)]
    serving = engine(store, triggers(CART))
    serving.observe(batch, customers(batch))
    [in_flight] = serving.due()
    other = engine(store, triggers(CART))  # the same wall clock: a moment later
    assert other.due() == []
    serving.mark([in_flight.instance_id], "delivered")
    later = at(24 * 60) + RECOVER_AFTER + timedelta(seconds=1)
    assert engine(store, triggers(CART), now=later).due() == []


def test_marked_emissions_are_not_handed_out_again(store: StateStore) -> None:
    batch = [track("Product Added", 0, cart_id="k1"), track("X", 40)]
    eng = engine(store, triggers(CART))
    eng.observe(batch, customers(batch))
    sent = eng.due()
    eng.mark([e.instance_id for e in sent], "rejected")
    assert engine(store, triggers(CART)).due() == []
    assert list_decisions(store)[0].delivery == "rejected"
    assert eng.decisions_summary()["rejected"] == 1


def test_emission_carries_customer_and_destinations(store: StateStore) -> None:
    spec = {**CART, "emit": {**CART["emit"], "destinations": ["klaviyo"]}}
    eng = engine(store, triggers(spec))
    batch = [track("Product Added", 0, cart_id="k1"), track("X", 40)]
    eng.observe(batch, customers(batch))
    [emission] = eng.due()
    assert emission.destinations == ("klaviyo",)
    assert emission.customer is not None and emission.customer.customer_id == "c-ann"
    assert emission.trigger == "cart_abandoned"
    assert emission.message.raw["context"]["espbridge"]["start_message_id"] == batch[0].message_id


def test_messages_without_a_customer_start_nothing(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    eng.observe([track("Product Added", 0, cart_id="k1"), track("X", 40)], {})
    assert eng.due() == []


def test_explain_names_the_cancelling_event(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    batch = [
        track("Product Added", 0, cart_id="k1", mid="add"),
        track("Order Completed", 12, cart_id="k1", mid="order-9"),
        track("X", 40),
    ]
    eng.observe(batch, customers(batch))
    eng.due()
    [record] = list_decisions(store, customer_id="c-ann")
    text = explain(record)
    assert "cancelled (cancel_event: an exit event matched before the due time)" in text
    assert "Order Completed order-9 at 2026-03-02T12:12:00+00:00" in text
    assert decision_counts(store) == {"cancelled.cancel_event": 1}


def test_list_filters_and_pending(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    batch = [track("Product Added", 0, cart_id="k1"), track("Product Added", 5, cart_id="k2")]
    eng.observe(batch, customers(batch))
    eng.due()
    assert list_decisions(store) == []
    assert len(list_decisions(store, include_pending=True)) == 2
    assert "pending" in explain(list_decisions(store, status="pending")[0])


def test_cli_list_explain_and_counts(store: StateStore, tmp_path: Path) -> None:
    eng = engine(store, triggers(CART))
    batch = [track("Product Added", 0, cart_id="k1", mid="add"), track("X", 40)]
    eng.observe(batch, customers(batch))
    [sent] = eng.due()
    url = str(store.engine.url)
    config = tmp_path / "espbridge.toml"
    config.write_text(f'[state]\nurl = "{url}"\n', encoding="utf-8")
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "cart_abandoned" in listed.output and sent.instance_id in listed.output
    explained = runner.invoke(app, ["explain", sent.instance_id, "--config", str(config)])
    assert explained.exit_code == 0
    assert "'Cart Abandoned' as unique_id" in explained.output
    by_customer = runner.invoke(app, ["explain", "c-ann", "--config", str(config)])
    assert sent.instance_id in by_customer.output
    counts = runner.invoke(app, ["counts", "--json", "--config", str(config)])
    assert '"fired": 1' in counts.output
    missing = runner.invoke(app, ["explain", "nobody", "--config", str(config)])
    assert missing.exit_code == 2  # names nothing: a usage error (1 is "unexpected")


def test_outcome_helper_lists_every_decision(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    batch = [track("Product Added", 0, cart_id="k1", mid="a"), track("X", 40)]
    eng.observe(batch, customers(batch))
    eng.due()
    assert outcomes(store) == {"cart_abandoned/a": ("fired", "fired")}


def test_preview_shows_what_would_fire_and_leaves_no_trace(store: StateStore) -> None:
    eng = engine(store, triggers(CART))
    batch = [track("Product Added", 0, cart_id="k1"), track("X", 40)]
    shown = eng.preview(batch, customers(batch))
    assert [e.message.event for e in shown] == ["Cart Abandoned"]
    assert list_decisions(store, include_pending=True) == []
    assert eng.watermark() is None
    assert eng.decisions_summary() == {}
    eng.observe(batch, customers(batch))
    assert [e.instance_id for e in eng.due()] == [shown[0].instance_id]
