"""Plain data types shared by every layer: a Segment message, a rejected row.

`mapping` is pure: these types carry data, never connections or state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

MessageType = Literal["track", "identify", "page", "screen", "alias", "group"]
MESSAGE_TYPES: frozenset[str] = frozenset(("track", "identify", "page", "screen", "alias", "group"))

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One validated Segment-spec message.

    Attributes:
        type: Segment call type.
        message_id: Segment's `messageId`; the root of every idempotency key.
        timestamp: Event time (aware, UTC). All trigger logic runs on it.
        user_id: `userId`, if any.
        anonymous_id: `anonymousId`, if any.
        event: Event name for `track`, else None.
        traits: `traits` for identify/group, else `context.traits`.
        properties: `properties` for track/page/screen.
        raw: The message exactly as read (for mapping paths such as `$.context.ip`).
        source_ref: Where it came from: `file:line`, `table:pk` or `inbox:id`.
    """

    type: MessageType
    message_id: str
    timestamp: datetime
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    traits: Mapping[str, Any]
    properties: Mapping[str, Any]
    raw: Mapping[str, Any]
    source_ref: str

    @property
    def name(self) -> str | None:
        """`name` of a page or screen call."""
        value = self.raw.get("name")
        return value if isinstance(value, str) else None

    @property
    def previous_id(self) -> str | None:
        """`previousId` of an alias call."""
        value = self.raw.get("previousId")
        return value if isinstance(value, str) else None

    @property
    def group_id(self) -> str | None:
        """`groupId` of a group call."""
        value = self.raw.get("groupId")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A record that could not be sent, kept with the reason (never dropped silently).

    Attributes:
        source_ref: The record: `file:line`, `table:pk`, `inbox:id` or a messageId.
        field: The offending field as a path (`timestamp`, `properties.price`), or None.
        reason: Human-readable reason, e.g. the ESP's `detail`.
        stage: Where it was rejected: `source`, `identity`, `mapping`, `destination`, `trigger`.
        payload: The record (already redacted of secrets), for `espbridge retry`.
        destination: The destination name for destination-stage rejects.
        key: The idempotency key, when one exists.
    """

    source_ref: str
    field: str | None
    reason: str
    stage: str = "source"
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    destination: str | None = None
    key: str | None = None
