"""`espbridge serve`: the ingest API and the inbox worker in one process.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and finishes the requests
in flight; then the worker finishes the batch it is sending, commits it, and the
process exits. Anything acknowledged with a 200 is in the inbox by then, so a
restarted `serve` (or a scheduled `run`) picks up where this one stopped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from sync.config import Config, config_secrets, load_config
from sync.ingest.app import create_app
from sync.ingest.metrics import IngestMetrics
from sync.ingest.settings import InboxSourceSettings, IngestSettings
from sync.ingest.worker import InboxSync, InboxWorker
from sync.store.state import StateStore

log = logging.getLogger("espbridge.ingest")


def inbox_syncs(config: Config) -> list[InboxSync]:
    """The syncs whose source is an inbox (the worker runs these)."""
    return [
        InboxSync(name, sync.source, tuple(sync.destinations))
        for name, sync in config.syncs.items()
        if isinstance(config.sources[sync.source], InboxSourceSettings)
    ]


def ingest_settings(config: Config) -> IngestSettings:
    """The config's `[ingest]` section (defaults when absent)."""
    found = getattr(config, "ingest", None)
    return found if isinstance(found, IngestSettings) else IngestSettings()


class KeptTransport(httpx.AsyncBaseTransport):
    """One connection pool per destination for the life of `serve`.

    The engine builds destinations per run and closes them after; without this, every
    worker run would pay for a new pool, new connections and a new TLS context.
    """

    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
        self.inner = httpx.AsyncHTTPTransport(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the kept pool."""
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Kept open across runs (the process exit releases it)."""


def build(
    config: Config,
    store: StateStore,
    *,
    settings: IngestSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> tuple[FastAPI, InboxWorker]:
    """The app with its worker attached (started and stopped by the app's lifespan)."""
    from sync.engine import SyncEngine  # the engine pulls in every connector

    settings = settings or ingest_settings(config)
    metrics = IngestMetrics()
    if transports is None:
        transports = {name: KeptTransport() for name in config.destinations}
    engine = SyncEngine(config, store, transports=transports)
    worker = InboxWorker(engine, store, inbox_syncs(config), settings, metrics)
    app = create_app(
        settings, store, metrics=metrics, on_commit=worker.wake, lifespan=worker.lifespan
    )
    return app, worker


def serve(
    config: str | Path | Config,
    host: str | None = None,
    port: int | None = None,
    *,
    settings: IngestSettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> None:
    """Run the ingest API and the worker until SIGTERM or Ctrl-C.

    Args:
        config: A config file path or an already loaded config.
        host: Listen address (default: `[ingest].host`).
        port: Listen port (default: `[ingest].port`).
        settings: Ingest settings instead of the config's `[ingest]` section.
        transports: Per-destination httpx transports (tests).
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    settings = settings or ingest_settings(cfg)
    if not settings.write_keys and settings.webhook_secret is None:
        log.warning("no write_keys and no webhook_secret: every ingest request gets a 401")
    # The worker thread is CPU-bound between I/O; a shorter switch interval lets the API
    # thread answer between its steps instead of waiting 5 ms for the GIL each time.
    sys.setswitchinterval(0.0005)
    store = StateStore.open(cfg.state.url, secrets=config_secrets(cfg))
    app, _worker = build(cfg, store, settings=settings, transports=transports)
    try:
        uvicorn.run(
            app,
            host=host or settings.host,
            port=settings.port if port is None else port,
            timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
            access_log=False,
            log_level="info",
        )
    finally:
        store.close()
