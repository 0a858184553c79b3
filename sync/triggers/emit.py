"""What a firing instance sends: one `track` message the destinations map as usual."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson

from connectors.base import Customer
from mapping.content import ProductView, recommendations
from mapping.fields import resolve
from mapping.message import parse_message
from mapping.types import Message
from sync.triggers.settings import TriggerSettings


@dataclass(frozen=True, slots=True)
class Emission:
    """A decided firing, ready for the destinations.

    Attributes:
        instance_id: Deterministic instance id; also `message.message_id` (the unique_id).
        trigger: The trigger's name.
        message: The `track` message to map and send.
        destinations: Destination names; empty means every destination of the sync.
        customer: The customer it is about.
    """

    instance_id: str
    trigger: str
    message: Message
    destinations: tuple[str, ...]
    customer: Customer | None


@dataclass(frozen=True, slots=True)
class Built:
    """The emission's JSON form (stored on the instance), or why it cannot be built."""

    emission: bytes | None
    missing: list[str]
    fallbacks: list[str]


_HEAVY_CONTEXT = frozenset(
    ("ip", "library", "userAgent", "userAgentData", "os", "device", "network", "screen")
)
_KEPT = ("type", "event", "messageId", "timestamp", "userId", "anonymousId", "properties")


def jsonable(value: Any) -> Any:
    """A JSON-safe copy (datetimes as ISO strings, anything odd as text)."""
    return orjson.loads(dumps(value))


def dumps(value: Any) -> bytes:
    """orjson bytes (datetimes as ISO strings, anything odd as text)."""
    return orjson.dumps(value, default=str)


def start_of(row: dict[str, Any]) -> dict[str, Any]:
    """The decoded start snapshot of an instance row (decoded once, then cached)."""
    cached = row.get("start_obj")
    if cached is None:
        cached = row["start_obj"] = orjson.loads(row["start"])
    return cast(dict[str, Any], cached)


def snapshot(
    message: Message,
    customer: Customer,
    known: dict[str, tuple[dict[str, Any], bytes]] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """What an instance keeps of its start event and customer, and its orjson bytes.

    The message without transport noise (ip, user agent, library, `sentAt`…), so
    pending instances stay small; paths read `properties`, `context.page`,
    `context.traits`, `context.timezone` and `customer.*`.

    Args:
        message: The start event.
        customer: Its customer.
        known: Customer id → (customer part, its bytes) already built in this batch;
            a customer's many events share one (read-only) copy.
    """
    raw = message.raw
    kept = {k: raw[k] for k in _KEPT if k in raw}
    context = raw.get("context")
    if type(context) is dict:
        light = context.copy()  # then drop the few heavy keys: cheaper than filtering all
        for key in _HEAVY_CONTEXT.intersection(light):
            del light[key]
        kept["context"] = light
    elif isinstance(context, Mapping):
        kept["context"] = {k: v for k, v in context.items() if k not in _HEAVY_CONTEXT}
    if message.type != "track" and "traits" in raw:
        kept["traits"] = raw["traits"]
    part = known.get(customer.customer_id) if known is not None else None
    if part is None:
        whole = {
            "id": customer.customer_id,
            "identifiers": {k: list(v) for k, v in customer.identifiers.items()},
            "traits": dict(customer.traits),
        }
        part = (whole, dumps(whole))
        if known is not None:
            known[customer.customer_id] = part
    start = {"message": kept, "source_ref": message.source_ref, "customer": part[0]}
    blob = dumps(
        {"message": kept, "source_ref": message.source_ref, "customer": orjson.Fragment(part[1])}
    )
    return start, blob


def data_view(start: Mapping[str, Any], trigger: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What paths read: the start message, plus `customer.*`, `trigger.*` and `content.*`."""
    data = dict(start.get("message") or {})
    data["customer"] = start.get("customer") or {}
    if trigger is not None:
        data["trigger"] = dict(trigger)
    return data


def customer_of(start: Mapping[str, Any]) -> Customer:
    """The customer snapshot as a `Customer`."""
    found = start.get("customer") or {}
    return Customer(
        customer_id=str(found.get("id", "")),
        identifiers={k: list(v) for k, v in (found.get("identifiers") or {}).items()},
        traits=dict(found.get("traits") or {}),
    )


def content_block(
    trigger: TriggerSettings, activity: Iterable[Mapping[str, Any]], at: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """The recommendations block at decision time `at` (event time): (products, fallback used)."""
    rule = trigger.emit.recommendations
    if rule is None:
        return [], False
    since = at - rule.lookback
    viewed: list[ProductView] = []
    bought: list[str] = []
    for row in activity:
        if not since <= row["event_time"] <= at:
            continue
        if row["kind"] == "viewed":
            product = row["product"]
            if isinstance(product, bytes):
                product = orjson.loads(product)
            viewed.append(ProductView(row["product_id"], row["event_time"], product))
        else:
            bought.append(row["product_id"])
    block = recommendations(viewed, bought, at, rule.lookback, rule.limit, rule.fallback)
    return block.value, block.fallback_used


def build(
    trigger: TriggerSettings, row: dict[str, Any], activity: Iterable[Mapping[str, Any]]
) -> Built:
    """The emission of a firing instance (`row` is its `trigger_instances` row)."""
    start = start_of(row)
    meta = {
        "name": trigger.name,
        "instance_id": row["instance_id"],
        "due_at": row["due_at"].isoformat(),
        "start_time": row["start_time"].isoformat(),
        "entity_key": row["entity_key"] or None,
    }
    data = data_view(start, meta)
    products, block_fallback = content_block(trigger, activity, row["due_at"])
    data["content"] = {"recommendations": products}
    resolved = resolve(trigger.emit.properties, data)
    if resolved.missing:
        return Built(None, resolved.missing, resolved.fallbacks_used)
    properties = dict(resolved.values)
    fallbacks = list(resolved.fallbacks_used)
    if trigger.emit.recommendations is not None:
        properties[trigger.emit.recommendations.property] = products
        if block_fallback:
            fallbacks.append(trigger.emit.recommendations.property)
    raw = _raw(trigger, row, data, properties)
    emission = {"raw": raw, "destinations": trigger.emit.destinations, "source_ref": _ref(row)}
    return Built(dumps(emission), [], fallbacks)


def _ref(row: Mapping[str, Any]) -> str:
    return f"trigger:{row['trigger']}:{row['instance_id']}"


def _first(customer: Mapping[str, Any], kind: str) -> str | None:
    values = (customer.get("identifiers") or {}).get(kind) or []
    return str(values[0]) if values else None


def _raw(
    trigger: TriggerSettings,
    row: Mapping[str, Any],
    data: Mapping[str, Any],
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    message = data
    customer = data["customer"]
    context_traits = (message.get("context") or {}).get("traits") or {}
    traits = {
        "email": _first(customer, "email") or context_traits.get("email"),
        "phone": _first(customer, "phone") or context_traits.get("phone"),
    }
    raw: dict[str, Any] = {
        "type": "track",
        "event": trigger.emit.event,
        "messageId": row["instance_id"],
        "timestamp": row["due_at"].isoformat(),
        "userId": _first(customer, "user_id") or message.get("userId"),
        "anonymousId": _first(customer, "anonymous_id") or message.get("anonymousId"),
        "properties": dict(properties),
        "context": {
            "traits": {k: v for k, v in traits.items() if v},
            "espbridge": {
                "trigger": trigger.name,
                "instance_id": row["instance_id"],
                "start_message_id": row["start_message_id"],
            },
        },
    }
    return {k: v for k, v in raw.items() if v is not None}


def emission_of(row: dict[str, Any]) -> Emission:
    """The `Emission` stored on a fired instance."""
    stored = orjson.loads(row["emission"])
    message = parse_message(stored["raw"], stored["source_ref"])
    return Emission(
        instance_id=row["instance_id"],
        trigger=row["trigger"],
        message=message,
        destinations=tuple(stored.get("destinations") or ()),
        customer=customer_of(start_of(row)),
    )
