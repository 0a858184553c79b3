"""Planted stories: a few scripted customers whose mess every dataset contains.

Each story puts known facts into the manifest (under `planted`), so tests can assert
that identity resolution, triggers and dedup see exactly them, whatever the size.
"""

from __future__ import annotations

from typing import Any

from connectors.sample.catalog import DAY_MS, anonymous_id, iso, person, product, user_id
from connectors.sample.sessions import JUNK_EMAIL, Event, SessionMaker

HOUR = 3_600_000


class Stories:
    """Builds the planted events (sorted by received time) and their manifest entry."""

    def __init__(self, maker: SessionMaker, start_ms: int) -> None:
        self.maker = maker
        self.start = start_ms
        self.events: list[Event] = []
        self.planted: dict[str, Any] = {}
        self.special: dict[str, str] = {}
        """messageId → what must happen to its line: `duplicate`, `late`, malformed kinds."""

    def _at(self, day: float, hours: float = 0) -> int:
        return self.start + int(day * DAY_MS + hours * HOUR)

    def event(self, kind: str, ts: int, user: str | None, anon: str | None, **kw: Any) -> Event:
        event = self.maker.event(kind, ts, user, anon or "", **kw)
        if anon is None:
            del event[2]["anonymousId"]
        self.events.append(event)
        return event

    def build(self, seed: int) -> list[Event]:
        """All planted events, sorted by received time."""
        self._anonymous_then_identified(seed, 1)
        self._two_emails(2)
        self._shared_device(seed, 3, 4)
        self._junk(seed, 5)
        self._carts(6, 7, 8)
        self._repeat_views(9)
        self._lapsed(10, 11, 12)
        self._mess(13)
        self.events.sort(key=lambda e: e[1])
        return self.events

    def _anonymous_then_identified(self, seed: int, c: int) -> None:
        anon, user = anonymous_id(seed, c, 0), user_id(c)
        for i in range(3):
            self.event(
                "track",
                self._at(2, 0.1 * i),
                None,
                anon,
                event="Product Viewed",
                properties=product(i),
            )
        self.event("identify", self._at(2, 0.5), user, anon, traits=dict(person(c)))
        self.event("alias", self._at(2, 0.51), user, anon, properties=None)[2]["previousId"] = anon
        self.planted["anonymous_then_identified"] = {
            "anonymous_id": anon,
            "user_id": user,
            "email": person(c)["email"],
        }

    def _two_emails(self, c: int) -> None:
        user, traits = user_id(c), dict(person(c))
        second = f"{traits['first_name']}.work{c}@example.org".lower()
        self.event(
            "identify", self._at(3), user, anonymous_id(self.maker.seed, c, 0), traits=traits
        )
        self.event(
            "identify",
            self._at(20),
            user,
            anonymous_id(self.maker.seed, c, 1),
            traits=traits | {"email": second},
        )
        self.planted["two_emails"] = {"user_id": user, "emails": [traits["email"], second]}

    def _shared_device(self, seed: int, a: int, b: int) -> None:
        device = anonymous_id(seed, a, 0)
        for day, c in ((4, a), (6, b)):
            self.event("identify", self._at(day), user_id(c), device, traits=dict(person(c)))
            self.event(
                "track",
                self._at(day, 0.2),
                user_id(c),
                device,
                event="Product Viewed",
                properties=product(c),
            )
        self.planted["shared_device"] = {
            "anonymous_id": device,
            "user_ids": [user_id(a), user_id(b)],
        }

    def _junk(self, seed: int, c: int) -> None:
        anon = anonymous_id(seed, c, 0)
        self.event("identify", self._at(5), "null", anon, traits={"email": JUNK_EMAIL})
        self.event(
            "track",
            self._at(5, 0.1),
            "undefined",
            anon,
            event="Product Viewed",
            properties=product(1),
        )
        self.event("identify", self._at(5, 0.2), "", anon, traits={"email": ""})
        self.planted["junk_identifiers"] = {
            "anonymous_id": anon,
            "user_ids": ["null", "undefined", ""],
            "emails": [JUNK_EMAIL, ""],
        }

    def _carts(self, abandon_checkout: int, abandon_add: int, buyer: int) -> None:
        carts = []
        for c, day, steps in ((abandon_checkout, 8, 2), (abandon_add, 9, 1), (buyer, 10, 3)):
            user, anon = user_id(c), anonymous_id(self.maker.seed, c, 0)
            cart = f"cart-planted-{c}"
            item = product(c) | {"quantity": 1, "cart_id": cart}
            # Signed in before shopping, so the ESPs know the address to write to.
            self.event("identify", self._at(day, -1), user, anon, traits=person(c))
            self.event("track", self._at(day), user, anon, event="Product Added", properties=item)
            line = {
                k: item[k]
                for k in ("product_id", "sku", "name", "price", "quantity", "url", "image_url")
            }
            body = {
                "cart_id": cart,
                "revenue": line["price"],
                "currency": "USD",
                "products": [line],
            }
            if steps >= 2:
                self.event(
                    "track",
                    self._at(day, 0.2),
                    user,
                    anon,
                    event="Checkout Started",
                    properties=body,
                )
            if steps >= 3:
                order = body | {"order_id": f"order-planted-{c}"}
                self.event(
                    "track",
                    self._at(day, 0.4),
                    user,
                    anon,
                    event="Order Completed",
                    properties=order,
                )
            carts.append(
                {
                    "user_id": user,
                    "email": person(c)["email"],
                    "cart_id": cart,
                    "ordered": steps >= 3,
                    "checkout_started": steps >= 2,
                }
            )
        self.planted["carts"] = carts

    def _repeat_views(self, c: int) -> None:
        user, anon = user_id(c), anonymous_id(self.maker.seed, c, 0)
        for i in range(3):
            self.event(
                "track",
                self._at(12, 0.25 * i),
                user,
                anon,
                event="Product Viewed",
                properties=product(7),
            )
        self.planted["repeat_views"] = {
            "user_id": user,
            "product_id": product(7)["product_id"],
            "count": 3,
            "within_minutes": 30,
        }

    def _lapsed(self, lapsed_a: int, lapsed_b: int, engaged: int) -> None:
        for c, email_day in ((lapsed_a, 1), (lapsed_b, 2), (engaged, 40)):
            user, anon = user_id(c), anonymous_id(self.maker.seed, c, 0)
            self.event("identify", self._at(email_day, -0.5), user, anon, traits=dict(person(c)))
            self.event(
                "track",
                self._at(email_day),
                user,
                anon,
                event="Email Opened",
                properties={"campaign_name": "Welcome"},
            )
            self.event(
                "track",
                self._at(email_day, 0.1),
                user,
                anon,
                event="Email Clicked",
                properties={"campaign_name": "Welcome"},
            )
            self.event(
                "track", self._at(41), user, anon, event="Product Viewed", properties=product(c)
            )
        self.planted["email_lapsed"] = {
            "user_ids": [user_id(lapsed_a), user_id(lapsed_b)],
            "last_email_day": [1, 2],
            "engaged_user_id": user_id(engaged),
        }

    def _mess(self, c: int) -> None:
        user, anon = user_id(c), anonymous_id(self.maker.seed, c, 0)
        dup = self.event(
            "track", self._at(14), user, anon, event="Product Viewed", properties=product(2)
        )
        self.special[dup[2]["messageId"]] = "duplicate"
        late = self.event(
            "track", self._at(15), user, anon, event="Product Viewed", properties=product(3)
        )
        self.events[-1] = (late[0], late[0] + 3 * DAY_MS, late[2])
        late[2]["receivedAt"] = iso(late[0] + 3 * DAY_MS)
        self.special[late[2]["messageId"]] = "late"
        for i, kind in enumerate(("bad_json", "missing_message_id", "bad_timestamp")):
            bad = self.event(
                "track",
                self._at(16, 0.1 * i),
                user,
                anon,
                event="Product Viewed",
                properties=product(4),
            )
            self.special[bad[2]["messageId"]] = kind
        self.planted["duplicate_message_id"] = dup[2]["messageId"]
        self.planted["late_message_id"] = late[2]["messageId"]
