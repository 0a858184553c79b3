"""Config of the `warehouse` source: any SQLAlchemy URL (DuckDB embedded by default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mapping.settings import StrictModel


class WarehouseSourceSettings(StrictModel):
    """`[sources.<name>]` with `type = "warehouse"`."""

    type: Literal["warehouse"] = "warehouse"
    url: str = Field(
        description="SQLAlchemy URL: duckdb:///path.duckdb, postgresql+psycopg://…, "
        "snowflake://…, bigquery://…, redshift+redshift_connector://…"
    )
    mode: Literal["segment_tables", "query"] = Field(
        default="segment_tables",
        description="`segment_tables` reads Segment's warehouse schema (tracks, identifies, "
        "per-event tables); `query` runs `query` with `id_column` and `cursor_column`.",
    )
    schema_name: str | None = Field(default=None, description="Schema of Segment's tables.")
    query: str | None = Field(default=None, description='SQL for `mode = "query"`.')
    id_column: str = Field(default="id", description="Unique row id (boundary dedup).")
    cursor_column: str = Field(default="received_at", description="Monotonic cursor column.")
