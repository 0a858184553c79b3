"""Helpers of the real-time path tests: messages, table reads, a live server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from sync.config import Config, ConfigError, parse_config
from sync.ingest.settings import InboxSourceSettings
from sync.store import schema
from sync.store.inbox import inbox
from sync.store.state import StateStore

WRITE_KEY = "wk-test-0123456789"
WEBHOOK_SECRET = "whsec-test"


def track(message_id: str, event: str = "Product Viewed", **extra: Any) -> dict[str, Any]:
    """A valid track call as a Segment library sends it."""
    return {
        "type": "track",
        "messageId": message_id,
        "userId": "user-1",
        "event": event,
        "timestamp": "2026-11-23T10:00:00.000Z",
        "properties": {"sku": "SKU-1"},
        **extra,
    }


def inbox_rows(store: StateStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(inbox).order_by(inbox.c.id))]


def ledger_rows(store: StateStore) -> list[dict[str, Any]]:
    t = schema.rejected_rows
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


class LiveServer:
    """Uvicorn on 127.0.0.1 (ephemeral port) in a thread, with the app's lifespan."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self._sock])), daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "ingest server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


def count_rows(store: StateStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def stored_ids(store: StateStore) -> set[str]:
    with store.engine.connect() as conn:
        return {str(row[0]) for row in conn.execute(sa.select(inbox.c.message_id))}


def inbox_config(state_url: str, klaviyo_url: str, **sync: Any) -> Config:
    """A config with one inbox source synced to the sandbox's Klaviyo."""
    data: dict[str, Any] = {
        "state": {"url": state_url},
        "sources": {"web": {"type": "inbox", "batch_size": 100}},
        "destinations": {
            "klaviyo": {
                "type": "klaviyo",
                "api_key": "pk_sandbox_123456",
                "base_url": klaviyo_url,
                "time_scale": 60,
            }
        },
        "syncs": {"realtime": {"source": "web", "destinations": ["klaviyo"], **sync}},
    }
    try:
        return parse_config(data)
    except ConfigError:
        # Until `sync.config` lists InboxSourceSettings in its source union.
        placeholder = {**data, "sources": {"web": {"type": "segment", "path": "."}}}
        sources = {"web": InboxSourceSettings(batch_size=100)}
        return parse_config(placeholder).model_copy(update={"sources": sources})


def sandbox_events(requests: list[dict[str, Any]]) -> Counter[str]:
    """unique_id → how many times the sandbox's Klaviyo accepted it."""
    found: Counter[str] = Counter()
    for request in requests:
        if request["path"] == "/api/events" and request["status"] == 202:
            found[request["body"]["data"]["attributes"]["unique_id"]] += 1
        elif request["path"] == "/api/event-bulk-create-jobs" and request["status"] == 202:
            for entry in request["body"]["data"]["attributes"]["events-bulk-create"]["data"]:
                for event in entry["attributes"]["events"]["data"]:
                    found[event["attributes"]["unique_id"]] += 1
    return found
