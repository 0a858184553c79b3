"""Config of the `segment` source: Segment-spec NDJSON files, local or in Segment's S3 layout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.secrets import is_secret_key
from mapping.settings import StrictModel

DEFAULT_PATTERN = "**/*"


def _hide(value: Any, secret: bool) -> Any:
    if isinstance(value, dict):
        return {k: _hide(v, secret or is_secret_key(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v, secret) for v in value]
    return SecretStr(value) if secret and isinstance(value, str) else value


def _reveal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class SegmentSourceSettings(StrictModel):
    """`[sources.<name>]` with `type = "segment"`."""

    type: Literal["segment"] = "segment"
    path: str = Field(
        description="Folder of .json/.jsonl/.ndjson files (optionally .gz): a local path, "
        "s3://bucket/segment-logs/<source-id>/ "
        "or gs://…; read through fsspec."
    )
    pattern: str = Field(
        default=DEFAULT_PATTERN,
        description="Glob under `path` selecting files; only .json, .jsonl, .ndjson "
        "(optionally .gz) files are read, and .gz files are decompressed.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold key/secret: never in a repr or a log line
        description="Passed to fsspec (e.g. endpoint_url, key/secret for S3). Values "
        "under names holding secret, token, password or credential are kept secret.",
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

    @field_validator("storage_options")
    @classmethod
    def _secret_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        hidden: dict[str, Any] = _hide(value, False)
        return hidden

    def fs_options(self) -> dict[str, Any]:
        """`storage_options` with the secret values revealed, for fsspec only."""
        revealed: dict[str, Any] = _reveal(self.storage_options)
        return revealed
