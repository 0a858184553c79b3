from sync.store.state import StateStore
from tests.sync.triggers.test_triggers_cart import CART
from tests.sync.triggers.timeline import engine, outcomes, run, track, triggers


def test_global_pg(pg_store: StateStore) -> None:
    eng = engine(pg_store, triggers({**CART, "key_scope": "global"}))
    run(eng, [track("Product Added", 0, cart_id="k1", mid="a1")])
    sent = run(eng, [track("Order Completed", 10, user="bob", cart_id="k1", mid="o|:1"), track("X", 40)])
    assert sent == []
    assert outcomes(pg_store) == {"cart_abandoned/a1": ("cancelled", "cancel_event")}
    from sync.triggers.explain import list_decisions
    assert list_decisions(pg_store, status="cancelled")[0].detail.startswith("Order Completed o|:1 at ")


def test_global_sqlite(store: StateStore) -> None:
    test_global_pg(store)
