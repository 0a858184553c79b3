"""Deterministic building blocks of the sample dataset: people, products, messages.

Everything here is a pure function of its arguments (customer index, seed, clock), so
the generator keeps no per-customer state and runs in constant memory.
"""

from __future__ import annotations

import time
from typing import Any

BASE_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: every timestamp is relative to it (plus a seeded offset)."""
DAY_MS = 86_400_000
SPAN_DAYS = 45
LIBRARY = {"name": "analytics.js", "version": "4.1.0"}
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kai")
LAST = ("Okafor", "Nguyen", "Schmidt", "Rossi", "Tanaka", "Silva", "Dubois", "Kowalski", "Berg")
PRODUCTS = (
    ("Merino Wool Beanie", "Hats", 29.0),
    ("Trail Running Shoes", "Shoes", 129.0),
    ("Rain Shell Jacket", "Jackets", 189.0),
    ("Organic Cotton Tee", "Tops", 24.5),
    ("Insulated Bottle", "Gear", 32.0),
    ("Down Vest", "Jackets", 149.0),
    ("Wool Socks 3-pack", "Socks", 19.99),
    ("Canvas Backpack", "Bags", 79.0),
    ("Fleece Pullover", "Tops", 64.0),
    ("Hiking Boots", "Shoes", 159.0),
    ("Sun Hat", "Hats", 27.0),
    ("Packable Duffel", "Bags", 59.0),
)
SHOP = "https://shop.example.com"
CDN = "https://cdn.example.com/img"
_MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835
_MASK = (1 << 128) - 1


def iso(ms: int) -> str:
    """Epoch milliseconds as Segment's ISO-8601 form, e.g. `2026-01-05T10:11:12.345Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def hex_id(value: int) -> str:
    """A stable 128-bit id in UUID form."""
    h = f"{value & _MASK:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def anonymous_id(seed: int, customer: int, device: int) -> str:
    """The anonymousId of a customer's device (a bijection, so never shared by accident)."""
    return hex_id((customer * 8 + device + 1) * _MIX * (seed * 2 + 1))


def user_id(customer: int) -> str:
    """The userId of a customer."""
    return f"user_{customer:07d}"


def person(customer: int) -> dict[str, str]:
    """Traits of a customer: first/last name and email."""
    first = FIRST[customer * 7 % len(FIRST)]
    last = LAST[customer * 13 % len(LAST)]
    return {
        "email": f"{first}.{last}.{customer}@example.com".lower(),
        "first_name": first,
        "last_name": last,
    }


def product(index: int) -> dict[str, Any]:
    """Product-level properties of the e-commerce spec."""
    name, category, price = PRODUCTS[index % len(PRODUCTS)]
    pid = f"p-{index:04d}"
    return {
        "product_id": pid,
        "sku": f"SKU-{index:04d}",
        "name": name,
        "category": category,
        "price": price,
        "url": f"{SHOP}/p/{pid}",
        "image_url": f"{CDN}/{pid}.jpg",
    }


def message(
    kind: str,
    message_id: str,
    ts: int,
    *,
    user: str | None,
    anon: str | None,
    received: int,
    event: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    name: str | None = None,
    path: str = "/",
) -> dict[str, Any]:
    """One Segment-spec message (keys in the order Segment writes them)."""
    msg: dict[str, Any] = {"type": kind, "messageId": message_id}
    if event is not None:
        msg["event"] = event
    if name is not None:
        msg["name"] = name
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    if traits is not None:
        msg["traits"] = traits
    if properties is not None:
        msg["properties"] = properties
    msg["context"] = {
        "ip": f"203.0.113.{ts % 250 + 1}",
        "library": LIBRARY,
        "userAgent": USER_AGENT,
        "page": {"path": path, "url": f"{SHOP}{path}"},
    }
    msg["timestamp"] = iso(ts)
    msg["originalTimestamp"] = iso(ts - 120)
    msg["sentAt"] = iso(received - 250)
    msg["receivedAt"] = iso(received)
    msg["integrations"] = {}
    msg["version"] = 2
    return msg
