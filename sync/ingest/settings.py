"""Config of the real-time path: `[ingest]` (the HTTP endpoint) and `type = "inbox"` sources."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from mapping.settings import StrictModel

KB = 1024


class IngestSettings(StrictModel):
    """`[ingest]`: the Segment-compatible endpoint run by `espbridge serve`."""

    write_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted Segment write keys (Basic auth username, or `writeKey` in "
        "the body). Empty: the Tracking API routes answer 401.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret of Segment's Webhooks destination (`X-Signature`, "
        "hex HMAC-SHA1). Unset: `/v1/webhook` answers 401.",
    )
    webhook_batch_first_event_signature: bool = Field(
        default=False,
        description="Also accept a JSON-array webhook body signed over its first event only "
        "(Segment Actions Webhook batching). Weaker: the other events are not signed.",
    )
    cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to post from a browser (Analytics.js); [] turns CORS off.",
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=8088, ge=0, le=65535, description="Port `serve` listens on.")
    max_batch_bytes: int = Field(
        default=500 * KB, ge=1 * KB, description="Largest request body (Segment: 500 KB)."
    )
    max_message_bytes: int = Field(
        default=32 * KB, ge=1 * KB, description="Largest message, as compact JSON (Segment: 32 KB)."
    )
    max_batch_messages: int = Field(
        default=2500, ge=1, description="Most messages in one batch (Segment: 2500)."
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request body not received within this time is answered 408 "
        "(Segment libraries retry it) and the connection closed, so stalled clients "
        "cannot hold connections open.",
    )
    tick_seconds: float = Field(
        default=5.0,
        gt=0,
        description="The worker runs each inbox sync at least this often, so delayed "
        "triggers that came due are sent even when no event arrives.",
    )
    max_batches_per_run: int = Field(
        default=100,
        ge=1,
        description="Batches per worker run before a new run record is opened "
        "(a shutdown still stops after the batch in flight).",
    )
    inbox_retention_hours: float = Field(
        default=168.0,
        ge=0,
        description="Inbox rows read by every inbox sync are deleted once this old "
        "(checked every 10 minutes); 0 keeps them forever.",
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long SIGTERM waits for in-flight work."
    )


class InboxSourceSettings(StrictModel):
    """`[sources.<name>]` with `type = "inbox"`: the messages `serve` accepted."""

    type: Literal["inbox"] = "inbox"
    batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Messages per checkpoint when reading the inbox (caps the sync's "
        "batch_size: small batches keep real-time latency low).",
    )
