"""The default mapping table, as data (every entry can be overridden in TOML).

Segment e-commerce spec v2 names → the metric names Klaviyo's own integrations use,
so Klaviyo's built-in flow templates and CLV reports work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from mapping.fields import FieldSpec

METRIC_NAMES: Mapping[str, str] = {
    "Product Viewed": "Viewed Product",
    "Product Added": "Added to Cart",
    "Checkout Started": "Started Checkout",
    "Order Completed": "Placed Order",
}
"""Segment event → Klaviyo metric. Other event names pass through unchanged."""

ORDERED_PRODUCT_METRIC = "Ordered Product"
"""The metric of each `products[]` item of an Order Completed."""

VALUE_KEYS = ("revenue", "total", "value", "currency")
"""Event properties that feed `value`/`value_currency` and are not repeated in properties."""

IDENTIFIER_DEFAULTS: Mapping[str, FieldSpec] = {
    "email": FieldSpec(path=["traits.email", "context.traits.email", "properties.email"]),
    "phone_number": FieldSpec(path=["traits.phone", "context.traits.phone", "properties.phone"]),
    "phone_region": FieldSpec(
        path=[
            "traits.address.country",
            "context.traits.address.country",
            "context.location.country",
        ]
    ),
    "external_id": FieldSpec(path=["userId"]),
    "anonymous_id": FieldSpec(path=["anonymousId"]),
}
"""Where a profile's identifiers come from (events, profiles and subscriptions)."""

EVENT_DEFAULTS: Mapping[str, FieldSpec] = {
    "metric_name": FieldSpec(path=["event"], required=True),
    "properties": FieldSpec(path=["properties"]),
    "value": FieldSpec(path=["properties.revenue", "properties.total", "properties.value"]),
    "value_currency": FieldSpec(path=["properties.currency"]),
    "time": FieldSpec(path=["timestamp", "originalTimestamp"]),
    "unique_id": FieldSpec(path=["messageId"], required=True),
    **IDENTIFIER_DEFAULTS,
}
"""Field defaults of `track_event` and `placed_order`."""


def traits(*names: str) -> FieldSpec:
    """A spec reading `traits.<name>`, then `context.traits.<name>`, for each name in order."""
    return FieldSpec(path=[f"{where}.{n}" for where in ("traits", "context.traits") for n in names])


PROFILE_DEFAULTS: Mapping[str, FieldSpec] = {
    **{k: v for k, v in IDENTIFIER_DEFAULTS.items() if k != "anonymous_id"},
    "first_name": traits("first_name", "firstName", "firstname"),
    "last_name": traits("last_name", "lastName", "lastname"),
    "organization": traits("company.name", "company", "organization"),
    "title": traits("title"),
    "image": traits("avatar", "image"),
    "locale": FieldSpec(path=["traits.locale", "context.traits.locale", "context.locale"]),
    "location.address1": traits("address.street", "street"),
    "location.city": traits("address.city", "city"),
    "location.region": traits("address.state", "region", "state"),
    "location.zip": traits("address.postal_code", "zip", "postal_code"),
    "location.country": traits("address.country", "country"),
    "location.ip": FieldSpec(path=["context.ip"]),
    "location.timezone": FieldSpec(path=["context.timezone"]),
    # Klaviyo location attributes Segment's spec has no trait for: sent only when mapped.
    "location.address2": FieldSpec(),
    "location.latitude": FieldSpec(),
    "location.longitude": FieldSpec(),
    "properties": FieldSpec(path=["traits", "context.traits"]),
}
"""Field defaults of `upsert_profile`; `properties` takes every trait not mapped above."""

PROFILE_TRAIT_EXCLUDES = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "firstName",
        "firstname",
        "lastname",
        "last_name",
        "lastName",
        "title",
        "avatar",
        "image",
        "address",
        "street",
        "city",
        "region",
        "state",
        "zip",
        "postal_code",
        "country",
        "company",
        "organization",
        "locale",
        "userId",
        "anonymousId",
    }
)
"""Traits already sent as standard profile attributes (not repeated in properties)."""

LIST_DEFAULTS: Mapping[str, FieldSpec] = {
    "list_id": FieldSpec(
        path=["integrations.Klaviyo.listId", "properties.list_id", "context.traits.list_id"]
    ),
    **{k: v for k, v in IDENTIFIER_DEFAULTS.items() if k != "anonymous_id"},
}
"""Field defaults of `subscribe`, `unsubscribe` and `add_to_list`."""

UNSUBSCRIBE_EVENTS = frozenset({"user unsubscribed", "unsubscribed"})
"""Track events that always unsubscribe (case-insensitive)."""

AUDIENCE_ENTERED_EVENTS = frozenset({"audience entered"})
"""Track events that add the profile to `list_id` (no consent change)."""
