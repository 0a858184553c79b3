"""The incremental cursor of one table: last value read and the ids read at that value.

Rows are read in `(cursor, id)` order with `cursor >= last_value`; rows whose cursor
equals `last_value` and whose id is in `boundary_ids` were read before and are skipped
(dlt's `unique_hashes`). Values are stored as JSON, with a tag for types JSON lacks.

Only what an earlier read stored is skipped (`Resume`): a duplicated id met again in the
same read is passed through (and counted), not dropped. Rows with a NULL id have no
identity, so `boundary_nulls` counts those read at `last_value` and as many are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

CURSOR_TYPES = (int, float, str, date, Decimal)
"""The cursor values a bookmark can hold (`datetime` is a `date`; `bool` an `int`)."""


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
    boundary_nulls: int = 0

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> TableCursor:
        """Parse the stored form (None: never read)."""
        if not data:
            return cls()
        ids = set(data.get("boundary_ids", []))
        return cls(decode(data.get("last_value")), ids, int(data.get("boundary_nulls", 0)))

    def dump(self) -> dict[str, Any]:
        """The JSON form (ids sorted so equal states compare equal)."""
        data = {"last_value": encode(self.last_value), "boundary_ids": sorted(self.boundary_ids)}
        if self.boundary_nulls:  # only when there were any: bookmarks stay as they were
            data["boundary_nulls"] = self.boundary_nulls
        return data

    def resume(self) -> Resume:
        """What this cursor says was read before, frozen for the read that starts now."""
        return Resume(self.last_value, frozenset(self.boundary_ids), self.boundary_nulls)

    def advance(self, value: Any, row_id: str | None) -> None:
        """Record a row as read (rows arrive in cursor order; None: a NULL id)."""
        if value != self.last_value:
            self.last_value = value
            self.boundary_ids = set()
            self.boundary_nulls = 0
        if row_id is None:
            self.boundary_nulls += 1
        else:
            self.boundary_ids.add(row_id)


@dataclass(slots=True)
class Resume:
    """The rows an earlier read stored as read at the cursor value this read starts from.

    Frozen when the read starts: checking the live cursor instead would also skip an id
    met twice in this read (a duplicated row), dropping it without a trace.
    """

    value: Any
    ids: frozenset[str]
    nulls: int

    def seen(self, value: Any, row_id: str | None) -> bool:
        """True when this row was read by an earlier run (at the boundary value)."""
        if value != self.value:
            return False
        if row_id is not None:
            return row_id in self.ids
        if self.nulls:  # NULL ids are alike: skip as many as were read
            self.nulls -= 1
            return True
        return False
