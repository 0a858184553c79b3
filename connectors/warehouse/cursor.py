"""The incremental cursor of one table: last value read and the ids read at that value.

Rows are read in `(cursor, id)` order with `cursor >= last_value`; rows whose cursor
equals `last_value` and whose id is in `boundary_ids` were read before and are skipped
(dlt's `unique_hashes`). Values are stored as JSON, with a tag for types JSON lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def encode(value: Any) -> Any:
    """A cursor value as JSON (datetime, date and Decimal are tagged)."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    return value


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, dict):
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$date" in value:
            return date.fromisoformat(value["$date"])
        if "$decimal" in value:
            return Decimal(value["$decimal"])
    return value


@dataclass(slots=True)
class TableCursor:
    """Cursor state of one table (or of the query)."""

    last_value: Any = None
    boundary_ids: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> TableCursor:
        """Parse the stored form (None: never read)."""
        if not data:
            return cls()
        return cls(decode(data.get("last_value")), set(data.get("boundary_ids", [])))

    def dump(self) -> dict[str, Any]:
        """The JSON form (ids sorted so equal states compare equal)."""
        return {"last_value": encode(self.last_value), "boundary_ids": sorted(self.boundary_ids)}

    def seen(self, value: Any, row_id: str) -> bool:
        """True when this row was read by an earlier run (at the boundary value)."""
        return value == self.last_value and row_id in self.boundary_ids

    def advance(self, value: Any, row_id: str) -> None:
        """Record a row as read (rows arrive in cursor order)."""
        if value != self.last_value:
            self.last_value = value
            self.boundary_ids = set()
        self.boundary_ids.add(row_id)
