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

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

CHUNK_PAGES = 20
MIN_PAGE_ROWS = 100
"""The smallest page `executed_pages` shrinks to when a page does not fit in memory."""

log = logging.getLogger(__name__)


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


def executed_pages(
    raw: Any,
    cursor: str,
    source: str,
    bounds: tuple[Any, Any],
    size: int,
    query: Callable[[Page], tuple[str, list[Any]]],
) -> Iterator[Page]:
    """The pages of rows with cursor in `[last, signpost]`, each page's `query` executed.

    The caller fetches each page's rows from `raw` before asking for the next page.

    Args:
        raw: The DuckDB connection.
        cursor: The quoted cursor column.
        source: What to select from (quoted table, or a subquery).
        bounds: (the stored cursor value or None when never read, the signpost).
        size: Rows per page (`page_size`).
        query: A page's SQL (placeholders `?`) and parameters.

    A page whose query runs out of DuckDB's memory (rows far wider than usual: its sort
    must hold the page) is read again in pages of half the size, and so are the pages
    after it, down to `MIN_PAGE_ROWS`; nothing of it was fetched, so nothing is read twice.
    """
    last, signpost = bounds
    start: Page | None = _first(last, signpost)
    while start is not None:
        found, start = _pages_from(raw, cursor, source, start, size), None
        for page in found:
            sql, params = query(page)
            try:
                raw.execute(sql, params)
            except duckdb.OutOfMemoryException as exc:
                if size // 2 < MIN_PAGE_ROWS:
                    raise
                size //= 2
                log.warning(
                    "%s: a page did not fit in DuckDB's memory_limit (%s); reading pages "
                    "of %d rows (set page_size lower, or duckdb_memory_limit higher)",
                    source,
                    str(exc).partition("\n")[0],
                    size,
                )
                start = Page(signpost, page.op, page.lower)
                break
            yield page


def _first(last: Any, signpost: Any) -> Page:
    """The first page's bounds: from `last` (inclusive, for boundary dedup) to `signpost`."""
    op, lower = (">=", last) if last is not None else ("", None)
    return Page(signpost, op, lower)


def _pages_from(raw: Any, cursor: str, source: str, first: Page, size: int) -> Iterator[Page]:
    """The pages from `first` (its bounds: where to start, and the signpost) on."""
    signpost, op, lower = first.upper, first.op, first.lower
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
