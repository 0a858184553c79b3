"""Random shopping sessions: browsing, carts, orders, email engagement, identity mess.

A session is a short list of `(timestamp_ms, received_ms, message)` for one customer,
drawn from a seeded `random.Random`. Facts worth asserting later (abandoned carts,
orders, repeat views) are reported to a `Ledger` that keeps counts and a capped list.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from connectors.sample.catalog import (
    DAY_MS,
    PRODUCTS,
    anonymous_id,
    message,
    person,
    product,
    user_id,
)

Event = tuple[int, int, dict[str, Any]]
LIST_CAP = 1000
JUNK_USER_IDS = ("null", "undefined", "")
JUNK_EMAIL = "test@test.com"
RANDOM_FIRST_CUSTOMER = 100
"""Customers below this index are reserved for the planted stories."""


KINDS = (
    "abandoned_carts",
    "anonymous_then_identified",
    "duplicates",
    "junk_identifiers",
    "late",
    "malformed",
    "orders",
    "repeat_product_views",
)
"""Every kind of fact a `Ledger` counts: the manifest lists each, 0 when none was drawn."""


@dataclass
class Ledger:
    """What was planted: counts (every kind in `KINDS`, from 0), and lists capped at `LIST_CAP`."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    lists: dict[str, list[Any]] = field(default_factory=dict)

    def note(self, kind: str, entry: Any = None) -> None:
        """Count one fact of `kind`, keeping its entry while the list is short."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if entry is not None:
            items = self.lists.setdefault(kind, [])
            if len(items) < LIST_CAP:
                items.append(entry)


class SessionMaker:
    """Draws sessions for random customers.

    Args:
        rng: The seeded random generator (shared with the caller, for determinism).
        seed: The dataset seed (used in anonymous ids).
        customers: How many random customers exist.
        start_ms: Start of the timeline.
        ledger: Where facts are noted.
    """

    def __init__(
        self, rng: random.Random, seed: int, customers: int, start_ms: int, ledger: Ledger
    ) -> None:
        self.rng = rng
        self.seed = seed
        self.customers = customers
        self.start_ms = start_ms
        self.ledger = ledger
        self._carts = 0

    def new_id(self) -> str:
        """A fresh messageId."""
        return f"{self.rng.getrandbits(128):032x}"

    def session(self, clock: int) -> list[Event]:
        """One session starting at `clock`."""
        rng = self.rng
        customer = RANDOM_FIRST_CUSTOMER + rng.randrange(self.customers)
        day = (clock - self.start_ms) // DAY_MS
        roll = rng.random()
        lapsed = customer % 9 == 4
        if roll < 0.18 and not (lapsed and day >= 10):
            return self._email(customer, clock)
        if roll < 0.45:
            return self.browse(customer, clock)
        if roll < 0.70:
            return self._cart(customer, clock, buy=False)
        if roll < 0.95:
            return self._cart(customer, clock, buy=True)
        return self._login(customer, clock)

    def _ctx(self, customer: int, identified: bool) -> tuple[str | None, str]:
        device = self.rng.randrange(2)
        anon = anonymous_id(self.seed, customer, device)
        return (user_id(customer) if identified else None), anon

    def event(self, kind: str, ts: int, user: str | None, anon: str, **kw: Any) -> Event:
        received = ts + self.rng.randrange(100, 2500)
        return (
            ts,
            received,
            message(kind, self.new_id(), ts, user=user, anon=anon, received=received, **kw),
        )

    def _views(
        self, user: str | None, anon: str, ts: int, count: int
    ) -> tuple[list[Event], int, int]:
        rng = self.rng
        events: list[Event] = []
        index = rng.randrange(len(PRODUCTS) * 4)
        repeat = rng.random() < 0.15
        for _ in range(count):
            if not repeat:
                index = rng.randrange(len(PRODUCTS) * 4)
            props = product(index) | {"currency": "USD", "value": product(index)["price"]}
            path = f"/p/{props['product_id']}"
            events.append(
                self.event(
                    "page", ts, user, anon, name="Product", path=path, properties={"path": path}
                )
            )
            ts += rng.randrange(5_000, 60_000)
            events.append(
                self.event(
                    "track", ts, user, anon, event="Product Viewed", properties=props, path=path
                )
            )
            ts += rng.randrange(30_000, 600_000)
        if repeat and count >= 3:
            self.ledger.note(
                "repeat_product_views",
                {"user_id": user, "anonymous_id": anon, "product_id": product(index)["product_id"]},
            )
        return events, ts, index

    def browse(self, customer: int, clock: int) -> list[Event]:
        user, anon = self._ctx(customer, self.rng.random() < 0.5)
        events, _, _ = self._views(user, anon, clock, self.rng.randrange(1, 4))
        return events

    def _identify(self, customer: int, ts: int, anon: str) -> Event:
        traits: dict[str, Any] = dict(person(customer))
        if self.rng.random() < 0.01:
            traits["email"] = JUNK_EMAIL
            self.ledger.note(
                "junk_identifiers", {"user_id": user_id(customer), "email": JUNK_EMAIL}
            )
        return self.event("identify", ts, user_id(customer), anon, traits=traits)

    def _cart(self, customer: int, clock: int, *, buy: bool) -> list[Event]:
        rng = self.rng
        anonymous_start = rng.random() < 0.3
        user, anon = self._ctx(customer, not anonymous_start)
        events, ts, index = self._views(user, anon, clock, rng.randrange(1, 4))
        self._carts += 1
        cart_id = f"cart-{self.seed}-{self._carts}"
        quantity = rng.randrange(1, 3)
        item = product(index) | {"quantity": quantity, "cart_id": cart_id}
        events.append(self.event("track", ts, user, anon, event="Product Added", properties=item))
        ts += rng.randrange(20_000, 300_000)
        if user is None:  # anonymous shopper logs in at checkout
            user = user_id(customer)
            events.append(self.event("identify", ts, user, anon, traits=dict(person(customer))))
            self.ledger.note("anonymous_then_identified", {"anonymous_id": anon, "user_id": user})
            ts += 1_000
        line = {
            k: item[k]
            for k in ("product_id", "sku", "name", "price", "quantity", "url", "image_url")
        }
        revenue = round(line["price"] * quantity, 2)
        checkout = {
            "cart_id": cart_id,
            "value": revenue,
            "revenue": revenue,
            "currency": "USD",
            "products": [line],
        }
        started = not buy and rng.random() < 0.5
        if buy or started:
            events.append(
                self.event("track", ts, user, anon, event="Checkout Started", properties=checkout)
            )
            ts += rng.randrange(60_000, 600_000)
        entry = {"cart_id": cart_id, "user_id": user, "email": person(customer)["email"]}
        if not buy:
            self.ledger.note("abandoned_carts", entry | {"checkout_started": started})
            return events
        order_id = f"order-{self.seed}-{self._carts}"
        order = checkout | {
            "order_id": order_id,
            "checkout_id": f"chk-{self._carts}",
            "total": revenue,
        }
        events.append(
            self.event("track", ts, user, anon, event="Order Completed", properties=order)
        )
        self.ledger.note("orders", entry | {"order_id": order_id, "revenue": revenue})
        return events

    def _email(self, customer: int, clock: int) -> list[Event]:
        user, anon = self._ctx(customer, True)
        campaign = {
            "campaign_name": f"Weekly {clock // (7 * DAY_MS)}",
            "email_subject": "New arrivals",
        }
        events = [self.event("track", clock, user, anon, event="Email Opened", properties=campaign)]
        if self.rng.random() < 0.4:
            ts = clock + self.rng.randrange(10_000, 900_000)
            events.append(
                self.event(
                    "track",
                    ts,
                    user,
                    anon,
                    event="Email Clicked",
                    properties=campaign | {"link_url": "https://shop.example.com/new"},
                )
            )
        return events

    def _login(self, customer: int, clock: int) -> list[Event]:
        _, anon = self._ctx(customer, False)
        events = [self._identify(customer, clock, anon)]
        ts = clock + 2_000
        events.append(
            self.event(
                "page",
                ts,
                user_id(customer),
                anon,
                name="Account",
                path="/account",
                properties={"path": "/account"},
            )
        )
        if self.rng.random() < 0.02:
            junk = self.rng.choice(JUNK_USER_IDS)
            events.append(
                self.event(
                    "track",
                    ts + 1_000,
                    junk,
                    anon,
                    event="Product List Viewed",
                    properties={"list_id": "home"},
                )
            )
            self.ledger.note("junk_identifiers", {"user_id": junk, "anonymous_id": anon})
        return events
