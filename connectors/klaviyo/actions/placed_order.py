"""Placed Order: `Order Completed` → one Placed Order + one Ordered Product per product.

Each Ordered Product's `unique_id` is `<messageId>:<index>`, derived from the order,
never random, so a replayed order never duplicates its product events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from connectors.base import Customer, Record
from connectors.klaviyo.actions import track_event
from connectors.klaviyo.actions.amounts import number
from connectors.klaviyo.actions.base import (
    MapContext,
    MapResult,
    reject,
    resolve_message,
    specs_for,
)
from connectors.klaviyo.defaults import EVENT_DEFAULTS, ORDERED_PRODUCT_METRIC
from mapping.fields import FieldSpec, Resolved, is_blank
from mapping.types import Message

NAME = "placed_order"
DEFAULTS: Mapping[str, FieldSpec] = {
    **EVENT_DEFAULTS,
    "products": FieldSpec(path=["properties.products"]),
    "order_metric": FieldSpec(value="Placed Order"),
    "product_metric": FieldSpec(value=ORDERED_PRODUCT_METRIC),
}
NOT_ON_ORDER = frozenset({"metric_name", "products", "product_metric"})
"""Fields the Placed Order event does not carry (its metric is `order_metric`)."""
NOT_ON_LINE = frozenset({"metric_name", "order_metric", "value"})
"""Fields an Ordered Product does not carry (its value is the line's price times quantity)."""
LIMITS = track_event.LIMITS
build_request = track_event.build_request
build_batch = track_event.build_batch
rows_from_error = track_event.rows_from_error


class PlacedOrderFields(track_event.TrackEventFields):
    """A Placed Order or one of its Ordered Product events."""

    line: int | None = Field(default=None, description="products[] index of an Ordered Product.")


class OrderedProduct(BaseModel):
    """One `products[]` item (Segment e-commerce spec v2)."""

    product_id: str | None = Field(default=None, description="Product id.")
    sku: str | None = Field(default=None, description="SKU.")
    name: str | None = Field(default=None, description="Product name.")
    price: float | None = Field(default=None, description="Unit price.")
    quantity: float | None = Field(default=None, description="Units ordered.")


def subscribes(message: Message, ctx: MapContext) -> bool:
    """`track` calls whose event renames to Placed Order (Order Completed by default)."""
    return (
        message.type == "track"
        and bool(message.event)
        and ctx.metric_name(message.event or "") == "Placed Order"
    )


def _line_value(item: Mapping[str, Any], line: int) -> float | int | tuple[str, str] | None:
    """price times quantity (1 when absent), or (field, reason) when either is no number."""
    amounts: dict[str, float | int | None] = {}
    for name in ("price", "quantity"):
        raw = item.get(name)
        try:
            amounts[name] = number(None if is_blank(raw) else raw)
        except ValueError:
            return (f"properties.products[{line}].{name}", f"{name}: {raw!r} is not a number")
    price, quantity = amounts["price"], amounts["quantity"]
    if price is None:
        return None
    return price if quantity is None else round(price * quantity, 2)


def _record(
    message: Message, fields: dict[str, Any], line: int | None, resolved: Resolved
) -> Record:
    absent = NOT_ON_ORDER if line is None else NOT_ON_LINE
    return Record(
        key=fields["unique_id"],
        action=NAME,
        fields={**fields, "line": line},
        source_ref=message.source_ref,
        event_time=message.timestamp,
        fallbacks=tuple(f for f in resolved.fallbacks_used if f not in absent),
    )


def map_message(message: Message, customer: Customer | None, ctx: MapContext) -> MapResult:
    """The order event followed by one event per product line."""
    # One resolution serves the order and its lines: the event fields' specs are the
    # same objects here as in `track_event`, with this action's overrides on top.
    resolved = resolve_message(specs_for(NAME, DEFAULTS, ctx), message)
    values = resolved.values
    metric = str(values.get("order_metric") or "Placed Order")
    order = track_event.event_fields(message, customer, ctx, values, metric=metric)
    if isinstance(order, tuple):
        return [reject(message, ctx, order[0], order[1], message.message_id)]
    out: MapResult = [_record(message, order, None, resolved)]
    items = values.get("products") or []
    if not isinstance(items, list):
        return [
            *out,
            reject(
                message, ctx, "properties.products", "products must be a list", message.message_id
            ),
        ]
    base = {k: v for k, v in order["properties"].items() if k != "products"}
    line_metric = str(values.get("product_metric") or ORDERED_PRODUCT_METRIC)
    for line, item in enumerate(items):
        key = f"{order['unique_id']}:{line}"
        if not isinstance(item, dict):
            out.append(
                reject(
                    message, ctx, f"properties.products[{line}]", "a product must be an object", key
                )
            )
            continue
        value = _line_value(item, line)
        if isinstance(value, tuple):
            out.append(reject(message, ctx, value[0], value[1], key))
            continue
        properties = {**base, **item}
        if len(properties) > track_event.MAX_PROPERTIES:
            # The order's own count was checked; its line adds the product's keys.
            reason = f"{len(properties)} properties with the order's; Klaviyo allows 400"
            out.append(reject(message, ctx, f"properties.products[{line}]", reason, key))
            continue
        product = {
            **order,
            "metric": line_metric,
            "properties": properties,
            "value": value,
            "unique_id": key,
        }
        out.append(_record(message, product, line, resolved))
    return out


FIELDS = PlacedOrderFields
"""The declared fields of this action's records."""
