"""The in-memory cancel and count windows: lookups, and memory that does not grow."""

from __future__ import annotations

from sync.triggers.window import CancelWindow, CountWindow, Span

HOUR = 3_600_000_000  # microseconds


def _cancel(at: int, key: str = "k1", customer: str = "ann", mid: str | None = None) -> tuple:
    return ("cart", customer, key, at, mid or f"m{at}", "Order Completed", False)


def test_the_earliest_cancel_in_the_span_wins_and_keyless_cancels_count() -> None:
    window = CancelWindow()
    window.add([_cancel(3 * HOUR), _cancel(2 * HOUR, key="*"), _cancel(HOUR // 2)])
    span = Span("cart", "ann", "k1", HOUR, 4 * HOUR, "start")
    found = window.earliest(span)
    assert found is not None and found[3] == 2 * HOUR  # the keyless one, after the start
    assert window.earliest(Span("cart", "bob", "k1", 0, 4 * HOUR, "s")) is None


def test_global_scope_finds_the_key_of_another_customer() -> None:
    window = CancelWindow(across=["cart"])
    window.add([_cancel(2 * HOUR, customer="bob")])
    found = window.earliest(Span("cart", "ann", "k1", HOUR, 3 * HOUR, "s"))
    assert found is not None and found[1] == "bob"


def test_forgetting_keeps_memory_to_the_window() -> None:
    window = CancelWindow()
    for hour in range(100):
        window.add([_cancel(hour * HOUR + n, customer=f"c{n}") for n in range(10)])
        window.advance({"cart": (hour - 24) * HOUR})
    assert len(window) == 250  # 25 hours of 10 events: the last 24 h and the current one
    assert not window.covers(Span("cart", "c1", "k1", 70 * HOUR, 80 * HOUR, "s"))
    assert window.covers(Span("cart", "c1", "k1", 80 * HOUR, 90 * HOUR, "s"))


def test_count_window_forgets_whole_groups_below_the_floor() -> None:
    window = CountWindow()
    for hour in range(50):
        events = [("browse", "ann", "p1", hour * HOUR + n, f"v{hour}-{n}") for n in range(3)]
        window.add(events, f"journal-{hour}")
        window.advance({"browse": (hour - 2) * HOUR})
    assert len(window) == 9
    assert set(window.events("browse", "ann", "p1").values()) == {
        "journal-47",
        "journal-48",
        "journal-49",
    }
