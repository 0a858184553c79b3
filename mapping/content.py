"""Fallback content blocks: pure functions that compute a personalization value.

The trigger engine keeps each customer's activity and calls these when it builds a
flow's payload; the result goes into the data that `FieldSpec` paths read
(`content.recommendations`), and `Block.fallback_used` is counted in the run report
like any field fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class ProductView:
    """One product a customer viewed.

    Attributes:
        product_id: The product id (`properties.product_id` or `sku`).
        at: Event time of the view.
        item: The product as it should appear in the payload (name, url, image…).
    """

    product_id: str
    at: datetime
    item: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Block:
    """A computed content value and whether (part of) it came from the fallback."""

    value: list[dict[str, Any]]
    fallback_used: bool


def _item(product_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {"product_id": product_id, **item}


def recommendations(
    viewed: Iterable[ProductView],
    bought: Iterable[str],
    now: datetime,
    window: timedelta = timedelta(days=7),
    top: int = 3,
    fallback: Sequence[Mapping[str, Any]] = (),
) -> Block:
    """Products viewed within `window` before `now` and not bought, best `top` first.

    Ranked by number of views in the window, then the latest view, then product id
    (so the same activity always gives the same list). Empty slots are filled from
    `fallback` (a configured bestseller list, each item with a `product_id`), skipping
    products already bought or already listed.

    Args:
        viewed: Product views (any order; views outside the window are ignored).
        bought: Ids of products the customer bought.
        now: The decision time (event time of the trigger, never the wall clock).
        window: How far back views count.
        top: How many products to return.
        fallback: Bestsellers, in order.

    Returns:
        The list (possibly shorter than `top` if even the fallback runs out) and
        whether any fallback item was used.
    """
    owned = set(bought)
    since = now - window
    counts: dict[str, int] = {}
    latest: dict[str, datetime] = {}
    items: dict[str, Mapping[str, Any]] = {}
    for view in viewed:
        if not since <= view.at <= now or view.product_id in owned:
            continue
        pid = view.product_id
        counts[pid] = counts.get(pid, 0) + 1
        if pid not in latest or view.at >= latest[pid]:
            latest[pid] = view.at
            items[pid] = view.item
    ranked = sorted(counts, key=lambda p: (-counts[p], -latest[p].timestamp(), p))[:top]
    chosen = [_item(pid, items[pid]) for pid in ranked]
    used_fallback = False
    for best in fallback:
        if len(chosen) >= top:
            break
        pid = str(best.get("product_id", ""))
        if not pid or pid in owned or pid in ranked:
            continue
        chosen.append(_item(pid, best))
        ranked.append(pid)
        used_fallback = True
    return Block(chosen, used_fallback)
