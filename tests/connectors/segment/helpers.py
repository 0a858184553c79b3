"""Shared helpers of the segment source tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from connectors.base import Bookmark
from connectors.segment.settings import SegmentSourceSettings
from connectors.segment.source import SegmentSource
from mapping.types import Message, RejectedRow

DAY = 86_400_000
DAY0 = 1_767_225_600_000  # 2026-01-01


@dataclass
class Read:
    """Everything one `read` produced."""

    messages: list[Message] = field(default_factory=list)
    rejects: list[RejectedRow] = field(default_factory=list)
    bookmark: Bookmark | None = None
    read: int = 0
    batches: int = 0
    largest: int = 0


def read_all(source: SegmentSource, bookmark: Bookmark | None, batch_size: int = 1000) -> Read:
    """Drain one read; keep the last bookmark (the input one if nothing was yielded)."""
    out = Read(bookmark=bookmark)
    for batch in source.read(bookmark, batch_size=batch_size):
        out.messages += batch.messages
        out.rejects += batch.rejects
        out.bookmark = batch.bookmark
        out.read += batch.read
        out.batches += 1
        out.largest = max(out.largest, len(batch.messages) + len(batch.rejects))
    return out


def source(path: Path | str, **options: Any) -> SegmentSource:
    """A segment source over a folder."""
    return SegmentSource(SegmentSourceSettings(path=str(path), **options), name="test")


def track(n: int, day: int = 0, **extra: Any) -> dict[str, Any]:
    """A valid track message numbered `n`."""
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{day}-{n}",
        "userId": f"u{n}",
        "timestamp": "2026-01-01T10:00:00.000Z",
        "properties": {"n": n},
        **extra,
    }


def lines(*messages: dict[str, Any]) -> bytes:
    """NDJSON of messages."""
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


def write_day_file(root: Path, day: int, name: str, data: bytes) -> Path:
    """Write a gzipped file into a Segment day folder (`day` days after 2026-01-01)."""
    folder = root / str(DAY0 + day * DAY)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(data, mtime=0))
    return path
