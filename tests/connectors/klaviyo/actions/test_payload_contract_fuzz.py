"""Whatever JSON a sender puts in traits and properties, every record we build is a body
the official spec and the klaviyo-api SDK models accept (or a reject naming a field)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Record
from connectors.klaviyo.actions import ACTIONS
from mapping.types import RejectedRow

from ..testkit import assert_valid, destination, message, need_shared

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["$19.99", "usd", "EUR", "1,299.00", "NaN", "94107", "2026-07-20"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
TRAIT_NAMES = st.sampled_from(
    [
        "first_name",
        "last_name",
        "title",
        "company",
        "avatar",
        "locale",
        "address",
        "city",
        "state",
        "zip",
        "postal_code",
        "country",
        "plan",
        "email_consent",
    ]
)
PROPERTY_NAMES = st.sampled_from(["revenue", "total", "value", "currency", "products", "sku"])
PRODUCTS = st.lists(
    st.dictionaries(st.sampled_from(["product_id", "price", "quantity", "name"]), SCALARS),
    max_size=3,
)
ADDRESS = st.dictionaries(
    st.sampled_from(["street", "city", "state", "postal_code", "country"]), SCALARS, max_size=5
)


def _check(raw: dict[str, Any]) -> None:
    for row in destination(list_id="Y6nRLr").map(message(raw), None):
        if isinstance(row, RejectedRow):
            assert row.field and row.reason
            continue
        assert isinstance(row, Record)
        module = ACTIONS[row.action]
        requests = [module.build_batch([row])]
        if row.action in ("track_event", "placed_order", "upsert_profile"):
            requests.append(module.build_request(row))
        for request in requests:
            # What goes on the wire (the client sends orjson's bytes): a NaN or infinity
            # nested in properties is blank to espbridge and travels as null.
            assert_valid(request.operation_id, orjson.loads(orjson.dumps(request.body)))


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(traits=st.dictionaries(TRAIT_NAMES, JSON, max_size=8), address=ADDRESS | JSON)
def test_any_identify_builds_spec_valid_bodies(traits: dict[str, Any], address: Any) -> None:
    need_shared()
    traits = {"email": "ann@example.com", "address": address, **traits}
    _check({"type": "identify", "userId": "u-1", "traits": traits})


@FUZZ
@given(
    properties=st.dictionaries(PROPERTY_NAMES, JSON, max_size=5),
    products=PRODUCTS,
    event=st.sampled_from(["Order Completed", "Product Viewed", "Signed Up"]),
)
def test_any_track_builds_spec_valid_bodies(
    properties: dict[str, Any], products: list[Any], event: str
) -> None:
    need_shared()
    properties = {"products": products, **properties}
    _check({"type": "track", "event": event, "userId": "u-1", "properties": properties})
