"""Config of the `warehouse` source: any SQLAlchemy URL (DuckDB embedded by default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from mapping.settings import StrictModel


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
    page_size: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Rows fetched per round trip (server-side cursor or keyset page).",
    )

    duckdb_memory_limit: str | None = Field(
        default="256MB",
        description="DuckDB only: the database's memory limit (its block cache grows up to it; "
        "DuckDB's own default is 80% of RAM). None keeps DuckDB's default.",
    )

    @model_validator(mode="after")
    def _query_needs_sql(self) -> WarehouseSourceSettings:
        if self.mode == "query" and not (self.query and self.query.strip()):
            raise ValueError('query: required when mode = "query"')
        return self
