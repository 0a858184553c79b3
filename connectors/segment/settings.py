"""Config of the `segment` source: Segment-spec NDJSON files, local or in Segment's S3 layout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from mapping.settings import StrictModel

# Option names (any nesting, e.g. client_kwargs.aws_secret_access_key) that hold a credential.
# Their values are kept as SecretStr, so the config's secret list masks them in errors, logs
# and run records; `fs_options` hands fsspec the plain values.
_SECRET_PARTS = (
    "secret",
    "token",
    "password",
    "credential",
    "private_key",
    "account_key",
    "connection_string",
)


DEFAULT_PATTERN = "**/*"


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def _hide(value: Any, secret: bool) -> Any:
    if isinstance(value, dict):
        return {k: _hide(v, secret or _is_secret(str(k))) for k, v in value.items()}
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
