"""A file source and an ESP stand-in that logs what it applied, for engine tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from connectors.base import Bookmark, Customer, Outcome, OutcomeStatus, Record, SourceBatch
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow


class LinesSource:
    """Reads one NDJSON file; the bookmark is the next line number."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        start = int((bookmark or {}).get("line", 0))
        lines = self.path.read_text().splitlines()
        for offset in range(start, len(lines), batch_size):
            chunk = lines[offset : offset + batch_size]
            messages: list[Message] = []
            rejects: list[RejectedRow] = []
            for number, line in enumerate(chunk, start=offset + 1):
                ref = f"{self.path.name}:{number}"
                try:
                    messages.append(parse_message(orjson.loads(line), ref))
                except (MessageError, orjson.JSONDecodeError) as exc:
                    field = exc.field if isinstance(exc, MessageError) else "$"
                    rejects.append(RejectedRow(ref, field, str(exc), payload={"line": line}))
            yield SourceBatch(messages, rejects, {"line": offset + len(chunk)}, len(chunk))

    def check(self) -> str:
        return f"{self.path} exists"


class LoggingEsp:
    """Acknowledges every record, appending its key to a log the test reads as the ESP's truth.

    Records whose `properties.bad` is true are rejected, as an ESP's 400 would be.
    """

    intent_log = False

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.queue: list[Record] = []

    def map(self, message: Message, customer: Customer | None) -> list[Record | RejectedRow]:
        if message.type != "track":
            return []
        return [
            Record(
                message.message_id,
                "track_event",
                {"event": message.event, **message.properties},
                message.source_ref,
                message.timestamp,
            )
        ]

    async def process_record(self, record: Record) -> None:
        self.queue.append(record)

    async def drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        applied: list[str] = []
        for record in self.queue:
            if record.fields.get("bad"):
                outcomes.append(
                    Outcome(
                        record.key,
                        OutcomeStatus.REJECTED,
                        record,
                        reason="invalid value",
                        field="properties.bad",
                    )
                )
            else:
                applied.append(record.key)
                outcomes.append(Outcome(record.key, OutcomeStatus.ACKNOWLEDGED, record))
        if applied:
            with self.log.open("a") as handle:
                handle.write("".join(f"{k}\n" for k in applied))
                handle.flush()
                os.fsync(handle.fileno())
        self.queue.clear()
        return outcomes

    async def check(self) -> str:
        return "fake"

    async def aclose(self) -> None:
        return None


def track(i: int, **props: Any) -> bytes:
    return orjson.dumps(
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"m{i}",
            "userId": f"u{i % 7}",
            "timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "properties": props,
        }
    )
