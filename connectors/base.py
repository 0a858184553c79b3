"""The contracts between connectors and `sync`.

A source yields batches of messages with the bookmark reached after each batch; a
destination takes records and returns outcomes. Neither writes state: only `sync`
records outcomes and advances bookmarks, in one transaction per batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from mapping.types import Message, RejectedRow

Bookmark = dict[str, Any]
"""A source's JSON-able cursor state (see `sync.state`)."""


@dataclass(slots=True)
class SourceBatch:
    """Messages read in one bounded batch.

    Attributes:
        messages: Valid messages, in source order.
        rejects: Lines or rows that failed validation, with file:line or key.
        bookmark: The bookmark to store once everything in this batch is acknowledged
            (None: leave the stored bookmark as it is).
        read: How many input lines or rows this batch covers (messages + rejects + skipped).
    """

    messages: list[Message]
    rejects: list[RejectedRow]
    bookmark: Bookmark | None
    read: int = 0


@runtime_checkable
class Source(Protocol):
    """Anything that reads Segment-spec messages incrementally."""

    name: str

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        """Yield batches after `bookmark`, capped at a signpost taken when reading starts."""
        ...

    def check(self) -> str:
        """Reach the source; return a one-line description or raise with the reason."""
        ...


class OutcomeStatus(StrEnum):
    """What happened to one record at a destination."""

    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class Record:
    """One unit of work for a destination action, already mapped.

    Attributes:
        key: Deterministic idempotency key (for events, Klaviyo's `unique_id`).
        action: The action module that sends it, e.g. `track_event`.
        fields: The action's fields, resolved from the message.
        source_ref: Where the input came from, for rejects.
        event_time: Event time of the input.
        uncertain: True when an earlier attempt may have reached the ESP without an
            acknowledgement (the ledger holds it as pending); a destination without
            an idempotency key must check before sending it again.
        fallbacks: The fields of `action` that a declared fallback filled, e.g.
            `("first_name",)` or `("merge_fields.FNAME",)`. `sync` counts them per
            field in the run report once the record is acknowledged.
    """

    key: str
    action: str
    fields: Mapping[str, Any]
    source_ref: str
    event_time: datetime
    uncertain: bool = False
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The destination's answer for one record.

    Attributes:
        key: The record's idempotency key.
        status: Acknowledged, rejected (never retried) or suppressed (not sent, on purpose).
        record: The record the outcome is for.
        reason: The ESP's reason (its `detail`) for a reject, or why it was suppressed.
        field: The offending field, from the ESP's pointer when it gives one.
        learned_ids: Identifiers the ESP told us, e.g. {"klaviyo_profile_id": "01H…"}.
    """

    key: str
    status: OutcomeStatus
    record: Record
    reason: str | None = None
    field: str | None = None
    learned_ids: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A record a destination does not take, on purpose: not a fault in the data.

    Example: Mailchimp keys members by email, so a visitor with no known address
    cannot be sent there. Counted per reason in the run report, not kept as a rejected
    row (there is nothing to fix); `sync` counts it in `<dest>.suppressed`.

    Attributes:
        key: The record's idempotency key.
        reason: Short and stable, e.g. `no_email` (`<dest>.suppressed.<reason>`).
    """

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Customer:
    """Who a message is about, as identity resolution decided.

    Attributes:
        customer_id: Stable id from the identity graph.
        identifiers: Typed identifiers, e.g. {"email": ["a@b.com"], "user_id": ["42"]}.
        traits: Latest known traits (non-null values only).
    """

    customer_id: str
    identifiers: Mapping[str, Sequence[str]]
    traits: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def first(self, kind: str) -> str | None:
        """The first identifier of a kind, or None."""
        values = self.identifiers.get(kind)
        return values[0] if values else None


@runtime_checkable
class Destination(Protocol):
    """An ESP destination: maps messages to records and sends them in batches it chooses.

    Batching belongs to the destination (its sinks): callers feed records with
    `process_record` and collect outcomes with `drain`.
    """

    name: str
    intent_log: bool
    """True when the ESP has no idempotency key (Mailchimp events): `sync` then records
    each key as pending before `process_record` and marks it acknowledged after."""

    def map(
        self, message: Message, customer: Customer | None
    ) -> Sequence[Record | RejectedRow | Suppressed]:
        """Turn one message into zero or more records (or mapping rejects, suppressions)."""
        ...

    async def process_record(self, record: Record) -> None:
        """Queue one record; may send a full batch before returning."""
        ...

    async def drain(self) -> list[Outcome]:
        """Send everything queued and return every outcome since the last drain."""
        ...

    async def check(self) -> str:
        """Reach the ESP with the configured credentials; return a description or raise."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def check_mapping_fields(
    title: str,
    mapping: Mapping[str, Mapping[str, Any]],
    fields: Mapping[str, Collection[str]],
    hint: Callable[[str, str], str | None] | None = None,
) -> None:
    """Refuse `[destinations.<name>.mapping.<action>]` keys the action does not have.

    An unknown key would be resolved and then ignored, so a typo or a field of another
    action would look configured and do nothing. Every unknown key is reported, each at
    its own key path (`mapping.track_event.first_name`), listing the action's fields.

    Args:
        title: The settings model's name (for the validation error).
        mapping: Field overrides by action.
        fields: The fields each action has.
        hint: Optional extra advice for an (action, key), e.g. where merge tags go.

    Raises:
        ValidationError: one line per unknown key.
    """
    errors: list[InitErrorDetails] = []
    for action, overrides in mapping.items():
        known = fields.get(action, ())
        for key in overrides:
            if key in known:
                continue
            elsewhere = sorted(name for name, names in fields.items() if key in names)
            advice = hint(action, key) if hint else None
            if advice is None and elsewhere:
                advice = f"{key!r} is a field of {', '.join(elsewhere)}"
            message = "unknown field; expected one of " + ", ".join(map(repr, sorted(known)))
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "unknown_field", message + (f" ({advice})" if advice else "")
                    ),
                    loc=("mapping", action, key),
                    input=key,
                )
            )
    if errors:
        raise ValidationError.from_exception_data(title, errors)
