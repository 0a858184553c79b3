"""Batches of one read: messages and rejects in row order, and the bookmark after them.

The bookmark is `{"v": 1, "streams": {<table>: {"last_value", "boundary_ids"}}}` (and
`"boundary_nulls"` when rows with a NULL id were read at `last_value`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import SourceBatch
from connectors.warehouse.cursor import TableCursor
from connectors.warehouse.rows import RowPlan, row_payload
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow

BOOKMARK_VERSION = 1


def build(
    ref: str, columns: Sequence[str], plan: RowPlan, row: Sequence[Any]
) -> Message | RejectedRow:
    """The message of one row, or the rejected row naming the field at fault."""
    try:
        return parse_message(plan.message(row), ref)
    except MessageError as exc:
        payload = {"row": row_payload(columns, row)}
        return RejectedRow(ref, exc.field, exc.reason, "source", payload)


class Batcher:
    """Collects the messages and rejects of the batch being filled; keeps the cursors.

    Args:
        cursors: Cursor of each stream, by name (updated by the readers).
        size: Rows per batch (messages + rejects).
    """

    def __init__(self, cursors: dict[str, TableCursor], size: int) -> None:
        self.cursors = cursors
        self.batch_size = size
        self.messages: list[Message] = []
        self.rejects: list[RejectedRow] = []

    def add(self, item: Message | RejectedRow) -> None:
        """Add one row's outcome (`build`)."""
        if isinstance(item, RejectedRow):
            self.rejects.append(item)
        else:
            self.messages.append(item)

    def full(self) -> bool:
        """True when the batch holds `batch_size` rows."""
        return len(self.messages) + len(self.rejects) >= self.batch_size

    def flush(self) -> SourceBatch:
        """Hand out the batch with the bookmark of every stream, and start a new one."""
        bookmark = {
            "v": BOOKMARK_VERSION,
            "streams": {key: cursor.dump() for key, cursor in sorted(self.cursors.items())},
        }
        read = len(self.messages) + len(self.rejects)
        batch = SourceBatch(self.messages, self.rejects, bookmark, read)
        self.messages, self.rejects = [], []
        return batch
