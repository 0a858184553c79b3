"""Config of the `segment` source: Segment-spec NDJSON files, local or in Segment's S3 layout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mapping.settings import StrictModel


class SegmentSourceSettings(StrictModel):
    """`[sources.<name>]` with `type = "segment"`."""

    type: Literal["segment"] = "segment"
    path: str = Field(
        description="Folder of .json/.jsonl/.ndjson files (optionally .gz): a local path, "
        "s3://bucket/segment-logs/<source-id>/ "
        "or gs://…; read through fsspec."
    )
    pattern: str = Field(
        default="**/*",
        description="Glob under `path` selecting files; only .json, .jsonl, .ndjson "
        "(optionally .gz) files are read, and .gz files are decompressed.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold key/secret: never in a repr or a log line
        description="Passed to fsspec (e.g. endpoint_url, key/secret for S3).",
    )
    late_days: int = Field(
        default=3,
        ge=0,
        le=366,
        description="Day folders older than the newest one by more than this many days are "
        "sealed: never listed again and dropped from the bookmark. A file landing in a "
        "sealed day folder is not read, so keep this above Segment's upload delay.",
    )
    duplicate_window: int = Field(
        default=200_000,
        ge=0,
        description="How many recent messageIds are remembered to count duplicates "
        "(duplicates are passed through: the sent-ledger dedups them).",
    )
