"""Rate tiers per Klaviyo operation: from the spec's `x-klaviyo-ratelimit`, else the table.

Klaviyo limits each endpoint per account with a burst (1 s) and a steady (1 min)
window. Overrides in config win over the spec, which wins over the published table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from connectors.http import RateTier


@dataclass(frozen=True, slots=True)
class Operation:
    """One Klaviyo operation we call."""

    operation_id: str
    method: str
    path: str
    tier: str


_OPERATIONS = (
    Operation("create_event", "POST", "/api/events", "XL"),
    Operation("bulk_create_events", "POST", "/api/event-bulk-create-jobs", "M"),
    Operation("create_or_update_profile", "POST", "/api/profile-import", "L"),
    Operation("update_profile", "PATCH", "/api/profiles/{id}", "L"),
    Operation("bulk_import_profiles", "POST", "/api/profile-bulk-import-jobs", "M"),
    Operation("get_bulk_import_profiles_job", "GET", "/api/profile-bulk-import-jobs/{job_id}", "M"),
    Operation(
        "get_errors_for_bulk_import_profiles_job",
        "GET",
        "/api/profile-bulk-import-jobs/{id}/import-errors",
        "M",
    ),
    Operation("bulk_subscribe_profiles", "POST", "/api/profile-subscription-bulk-create-jobs", "L"),
    Operation(
        "bulk_unsubscribe_profiles", "POST", "/api/profile-subscription-bulk-delete-jobs", "L"
    ),
    Operation("get_accounts", "GET", "/api/accounts", "XS"),
)
OPERATIONS: Mapping[str, Operation] = {op.operation_id: op for op in _OPERATIONS}

PUBLISHED_TIERS: Mapping[str, RateTier] = {
    "XS": RateTier(burst=1, steady=15),
    "S": RateTier(burst=3, steady=60),
    "M": RateTier(burst=10, steady=150),
    # The spec (2026-07-15) says 750/m for L; the docs table says 700/m. The spec is
    # read when available; the table keeps the stricter figure.
    "L": RateTier(burst=75, steady=700),
    "XL": RateTier(burst=350, steady=3500),
}

_RATE = re.compile(r"^\s*(\d+)\s*/\s*([sm])\s*$")


def _per(value: Any, unit: str) -> int | None:
    match = _RATE.match(value) if isinstance(value, str) else None
    return int(match.group(1)) if match and match.group(2) == unit else None


def tiers_from_spec(spec: Mapping[str, Any]) -> dict[str, RateTier]:
    """Rate tiers of every operation of an OpenAPI document, by operationId."""
    out: dict[str, RateTier] = {}
    for item in spec.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, Mapping) or "operationId" not in op:
                continue
            limit = op.get("x-klaviyo-ratelimit") or {}
            burst, steady = _per(limit.get("burst"), "s"), _per(limit.get("steady"), "m")
            if burst and steady:
                out[op["operationId"]] = RateTier(burst=burst, steady=steady)
    return out


@lru_cache(maxsize=4)
def load_spec_tiers(path: str) -> Mapping[str, RateTier]:
    """Tiers from a spec file on disk (cached; empty when the file is missing)."""
    file = Path(path)
    if not file.is_file():
        return {}
    return tiers_from_spec(orjson.loads(file.read_bytes()))


def tier_for(
    operation_id: str,
    spec_tiers: Mapping[str, RateTier],
    overrides: Mapping[str, RateTier],
) -> RateTier:
    """The tier of one operation: config override, then spec, then published table."""
    op = OPERATIONS[operation_id]
    for found in (
        overrides.get(operation_id),
        overrides.get(op.tier),
        spec_tiers.get(operation_id),
    ):
        if found is not None:
            return found
    return PUBLISHED_TIERS[op.tier]
