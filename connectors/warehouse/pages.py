"""Keyset pages of a DuckDB stream, found a chunk of pages at a time.

A page is every row with its cursor in `(lower, upper]` (the first page: `[last, upper]`,
for boundary dedup), so a page holds every row of its last cursor value and may exceed
`page_size` by the rows sharing one value. Each page is read with its own `ORDER BY`.

The upper bounds of the next `CHUNK_PAGES` pages come from one query: the smallest
`page_size * CHUNK_PAGES` cursor values above the lower bound (a top-N, so DuckDB's
memory stays bounded whatever the table's size), numbered, keeping every
`page_size`-th and the last. One bound query per page would scan the rest of the table
for each page: quadratic in the table's rows (a 3M-row table took longer to page
through than to read).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK_PAGES = 20


@dataclass(frozen=True, slots=True)
class Page:
    """Rows with cursor `<= upper` and `<op> lower` (no lower bound when `op` is empty)."""

    upper: Any
    op: str = ""
    lower: Any = None

    def where(self, cursor: str) -> tuple[str, list[Any]]:
        """The `WHERE` condition on the quoted cursor column (placeholders `?`), and parameters."""
        if not self.op:
            return f"{cursor} <= ?", [self.upper]
        return f"{cursor} <= ? AND {cursor} {self.op} ?", [self.upper, self.lower]


def _chunk(
    raw: Any, cursor: str, source: str, start: Page, limit: int, size: int
) -> tuple[list[Any], bool]:
    """Upper bounds of the next pages from `start` on, and whether they reach its upper bound."""
    where, params = start.where(cursor)
    # The last value is the one without a next (`lead`), over the same window as the
    # numbering: one sort, where `count(*) OVER ()` was a second window pass.
    sql = (
        f"SELECT espbridge_c, espbridge_n FROM (SELECT espbridge_c, "
        f"row_number() OVER espbridge_w AS espbridge_n, "
        f"lead(espbridge_c) OVER espbridge_w IS NULL AS espbridge_last "
        f"FROM (SELECT {cursor} AS espbridge_c FROM {source} WHERE {where} "
        f"ORDER BY {cursor} LIMIT ?) AS espbridge_top WINDOW espbridge_w AS "
        f"(ORDER BY espbridge_c)) AS espbridge_ranked "
        f"WHERE espbridge_n % ? = 0 OR espbridge_last ORDER BY espbridge_n"
    )
    found = raw.execute(sql, [*params, limit, size]).fetchall()
    # The last row's number is the count of values found.
    return [row[0] for row in found], not found or found[-1][1] < limit


def pages(
    raw: Any, cursor: str, source: str, last: Any, signpost: Any, size: int
) -> Iterator[Page]:
    """The pages of rows with cursor in `[last, signpost]` (all up to it when `last` is None).

    Args:
        raw: The DuckDB connection.
        cursor: The quoted cursor column.
        source: What to select from (quoted table, or a subquery).
        last: The stored cursor value (None: never read).
        signpost: The largest cursor value to read.
        size: Rows per page (`page_size`).
    """
    op, lower = (">=", last) if last is not None else ("", None)
    while True:
        start = Page(signpost, op, lower)
        bounds, done = _chunk(raw, cursor, source, start, size * CHUNK_PAGES, size)
        for upper in bounds:
            if op == ">" and upper == lower:
                continue  # a cursor value shared by more than a page of rows
            yield Page(upper, op, lower)
            op, lower = ">", upper
        if done:
            return
