"""Prometheus metrics of the real-time path, on a registry of their own (one per app)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class IngestMetrics:
    """Counters and gauges for ingest and the worker.

    Attributes:
        received: Messages received, by channel (`tracking-api`, `webhook`).
        stored: Messages committed to the inbox, by channel.
        duplicates: Messages whose messageId was already in the inbox.
        rejected: Messages refused, by channel and field.
        requests: Requests answered, by route and status code.
        emitted: Records acknowledged by a destination, by sync and destination.
        processed: Inbox messages a sync has moved past, by sync.
        lag_messages: Inbox messages a sync has not processed yet.
        lag_seconds: Age of the oldest inbox message a sync has not processed yet.
        latency: Seconds from ingest to the commit of the batch that sent a message,
            by sync and destination (every destination of the sync had answered).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "espbridge_ingest_received", "Messages received.", ["channel"], registry=r
        )
        self.stored = Counter(
            "espbridge_ingest_stored", "Messages committed to the inbox.", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "espbridge_ingest_duplicates", "Messages already in the inbox.", ["channel"], registry=r
        )
        self.rejected = Counter(
            "espbridge_ingest_rejected", "Messages refused.", ["channel", "field"], registry=r
        )
        self.requests = Counter(
            "espbridge_ingest_requests", "Requests answered.", ["route", "status"], registry=r
        )
        self.emitted = Counter(
            "espbridge_emitted",
            "Records acknowledged by a destination.",
            ["sync", "destination"],
            registry=r,
        )
        self.processed = Counter(
            "espbridge_inbox_processed", "Inbox messages processed.", ["sync"], registry=r
        )
        self.lag_messages = Gauge(
            "espbridge_inbox_lag_messages", "Inbox messages not processed.", ["sync"], registry=r
        )
        self.lag_seconds = Gauge(
            "espbridge_inbox_lag_seconds",
            "Age of the oldest unprocessed inbox message.",
            ["sync"],
            registry=r,
        )
        self.latency = Histogram(
            "espbridge_ingest_to_commit_seconds",
            "Seconds from ingest to the commit of the batch that sent the message.",
            ["sync", "destination"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
