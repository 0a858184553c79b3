"""The inbox on PostgreSQL: concurrent writers never make a reader skip a message."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest

from sync.ingest.inbox import InboxWriter
from sync.ingest.settings import InboxSourceSettings
from sync.ingest.source import InboxSource
from sync.ingest.validate import ValidMessage, check_message
from sync.store.state import StateStore
from tests.sync.ingest.helpers import track

pytestmark = pytest.mark.postgres


def _valid(ids: list[str]) -> list[ValidMessage]:
    now = datetime.now(UTC)
    checked = [
        check_message(i, track(m), received_at=now, sent_at=None, call_type=None, max_bytes=32768)
        for i, m in enumerate(ids)
    ]
    return [c for c in checked if isinstance(c, ValidMessage)]


def test_reader_skips_nothing_while_writers_commit(postgres_url: str) -> None:
    store = StateStore.open(postgres_url)
    writer = InboxWriter(store)
    run = uuid.uuid4().hex[:8]
    source = InboxSource("live", InboxSourceSettings(batch_size=50), store)
    bookmark = {"inbox_id": writer.max_id()}
    written: list[str] = []
    done = threading.Event()

    def write(w: int) -> None:
        for n in range(40):
            ids = [f"{run}-{w}-{n}-{i}" for i in range(5)]
            commit = writer.commit(_valid(ids), [], channel="t", received_at=datetime.now(UTC))
            assert commit.stored == 5
            written.extend(ids)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    read: list[str] = []
    while not done.is_set():
        if not any(t.is_alive() for t in threads):
            done.set()  # one more pass after the last commit
        for batch in source.read(bookmark, batch_size=50):
            read += [m.message_id for m in batch.messages if m.message_id.startswith(run)]
            bookmark = batch.bookmark

    again = writer.commit(_valid(written[:3]), [], channel="t", received_at=datetime.now(UTC))
    store.close()
    assert sorted(read) == sorted(written)  # none skipped, none twice
    assert (again.stored, again.duplicates) == (0, 3)
