"""Config of the `warehouse` source: any SQLAlchemy URL (DuckDB embedded by default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from mapping.settings import StrictModel

PAGE_ROWS = 10_000
DUCKDB_PAGE_ROWS = 30_000


class WarehouseSourceSettings(StrictModel):
    """`[sources.<name>]` with `type = "warehouse"`."""

    type: Literal["warehouse"] = "warehouse"
    url: str = Field(
        description="SQLAlchemy URL: duckdb:///path.duckdb, postgresql+psycopg://…, "
        "snowflake://…, bigquery://…, redshift+redshift_connector://…"
    )
    password: SecretStr | None = Field(
        default=None,
        description="Database password, kept out of `url` (and out of logs); "
        'typically "${WAREHOUSE_PASSWORD}".',
    )
    mode: Literal["segment_tables", "query"] = Field(
        default="segment_tables",
        description="`segment_tables` reads Segment's warehouse schema (tracks, identifies, "
        "per-event tables); `query` runs `query` with `id_column` and `cursor_column`.",
    )
    schema_name: str | None = Field(default=None, description="Schema of Segment's tables.")
    tables: list[str] | None = Field(
        default=None,
        description="segment_tables: read only these tables (e.g. identifies, "
        "order_completed); default every Segment table found.",
    )
    track_tables: Literal["events", "tracks"] = Field(
        default="events",
        description="segment_tables: read track calls from the per-event tables "
        "(with properties; `tracks` is then skipped, it holds the same calls) or from "
        "`tracks` only (no properties).",
    )
    query: str | None = Field(default=None, description='SQL for `mode = "query"`.')
    id_column: str = Field(default="id", description="Unique row id (boundary dedup).")
    cursor_column: str = Field(default="received_at", description="Monotonic cursor column.")
    page_size: int | None = Field(
        default=None,
        ge=100,
        le=1_000_000,
        description="Rows fetched per round trip (server-side cursor or keyset page). "
        f"Default {PAGE_ROWS:,}, and {DUCKDB_PAGE_ROWS:,} for DuckDB, whose keyset pages each "
        "cost one sorted query and a scan of the rows around them (rows that arrived late "
        "sit far from their cursor order).",
    )

    duckdb_memory_limit: str | None = Field(
        default="64MB",
        description="DuckDB only: the database's memory limit. DuckDB keeps every block it "
        "reads cached up to this limit, so a larger limit only makes memory grow with the "
        "table: a read is one pass, which needs the blocks around the page being read and "
        "the page's sort (32MB already re-reads blocks at 10M rows). Sorts and joins spill "
        "to disk beyond it; a page whose sort does not fit is read again in pages of half "
        "the size. None keeps DuckDB's default (80% of RAM).",
    )
    duckdb_threads: int | None = Field(
        default=1,
        ge=1,
        description="DuckDB only: threads DuckDB may use. Pages are read one at a time, "
        "and more threads cost more CPU than they save on a page; raise it for a heavy "
        "`query`. None keeps DuckDB's default (one per core).",
    )

    def rows_per_page(self, duckdb: bool) -> int:
        """`page_size`, or its default for the driver."""
        if self.page_size is not None:
            return self.page_size
        return DUCKDB_PAGE_ROWS if duckdb else PAGE_ROWS

    @model_validator(mode="after")
    def _query_needs_sql(self) -> WarehouseSourceSettings:
        if self.mode == "query" and not (self.query and self.query.strip()):
            raise ValueError('query: required when mode = "query"')
        return self
