"""`InboxSource`: the inbox as a `connectors.base.Source`, for `serve` and scheduled runs.

The bookmark is the last inbox id read; the signpost is the newest id when reading
starts. Scheduled `run`s and the `serve` worker read the same inbox through the same
sync (its lock, bookmark and sent-ledger), so a message is sent once whichever path
picks it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from connectors.base import Bookmark, SourceBatch
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow
from sync.ingest.settings import InboxSourceSettings
from sync.store.inbox import inbox
from sync.store.state import StateStore

BOOKMARK_KEY = "inbox_id"


def inbox_id(bookmark: Bookmark | None) -> int:
    """The last inbox id a bookmark covers (0 before the first batch)."""
    return int((bookmark or {}).get(BOOKMARK_KEY, 0))


@dataclass
class InboxSource:
    """Reads the state store's inbox in id order.

    Attributes:
        name: The source's name in the config.
        settings: Its `[sources.<name>]` section.
        store: The state store holding the inbox.
    """

    name: str
    settings: InboxSourceSettings
    store: StateStore

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        """Yield batches of messages after the bookmark, up to the newest id at the start."""
        size = min(batch_size, self.settings.batch_size)
        last = inbox_id(bookmark)
        with self.store.engine.connect() as conn:
            signpost = int(conn.execute(sa.select(sa.func.max(inbox.c.id))).scalar() or 0)
        while last < signpost:
            query = (
                sa.select(inbox.c.id, inbox.c.raw)
                .where(inbox.c.id > last, inbox.c.id <= signpost)
                .order_by(inbox.c.id)
                .limit(size)
            )
            with self.store.engine.connect() as conn:
                rows = [(int(r[0]), str(r[1])) for r in conn.execute(query)]
            if not rows:
                return
            last = rows[-1][0]
            yield _batch(rows, last)

    def check(self) -> str:
        """Count the inbox."""
        with self.store.engine.connect() as conn:
            count, newest = conn.execute(
                sa.select(sa.func.count(), sa.func.max(inbox.c.id)).select_from(inbox)
            ).one()
        return f"inbox: {count} messages, newest id {newest or 0}"


def _batch(rows: list[tuple[int, str]], last: int) -> SourceBatch:
    messages: list[Message] = []
    rejects: list[RejectedRow] = []
    for row_id, raw in rows:
        ref = f"inbox:{row_id}"
        try:
            decoded = orjson.loads(raw)
            messages.append(parse_message(decoded, ref))
        except MessageError as exc:
            rejects.append(RejectedRow(ref, exc.field, exc.reason, payload={"raw": raw[:2000]}))
        except orjson.JSONDecodeError as exc:
            rejects.append(RejectedRow(ref, "$", f"not JSON: {exc}", payload={"raw": raw[:2000]}))
    return SourceBatch(messages, rejects, {BOOKMARK_KEY: last}, read=len(rows))


def build_inbox_source(name: str, settings: InboxSourceSettings, store: StateStore) -> InboxSource:
    """The source for a `type = "inbox"` section (for the engine's source factory)."""
    return InboxSource(name, settings, store)
