"""Sinks (singer-sdk style): `process_record` queues, `is_full` / age decide, `process_batch` sends.

Every sink turns what Klaviyo answered into one `Outcome` per record: acknowledged,
or rejected with Klaviyo's `detail` and the field from its `source.pointer`. A
partially invalid bulk request is resent without its bad rows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from types import ModuleType
from typing import Any

import httpx

from connectors.base import Outcome, OutcomeStatus, Record
from connectors.errors import RejectedPayload
from connectors.http import gather_or_cancel
from connectors.klaviyo.actions import track_event
from connectors.klaviyo.actions.base import ApiRequest, RowError, chunk, notes_of
from connectors.klaviyo.client import KlaviyoClient
from connectors.klaviyo.errors import field_of

Builder = Callable[[Sequence[Record]], ApiRequest]
RowMapper = Callable[[Any, Sequence[Record]], list[RowError]]
OnSuccess = Callable[[httpx.Response, Sequence[Record]], Any]


def acknowledged(record: Record, **learned: str) -> Outcome:
    """An acknowledged outcome, carrying mapping notes (a dropped phone) as its reason."""
    return Outcome(record.key, OutcomeStatus.ACKNOWLEDGED, record, notes_of(record), None, learned)


def rejected(record: Record, reason: str, field: str | None = None) -> Outcome:
    """A rejected outcome with Klaviyo's reason."""
    notes = notes_of(record)
    return Outcome(
        record.key,
        OutcomeStatus.REJECTED,
        record,
        f"{reason} ({notes})" if notes else reason,
        field,
    )


def rounds(records: Sequence[Record], key: Callable[[Record], Hashable]) -> list[list[Record]]:
    """Split records so no round holds two with the same key (order kept per key)."""
    out: list[list[Record]] = []
    depth: dict[Hashable, int] = {}
    for record in records:
        k = key(record)
        level = depth.get(k, -1) + 1
        depth[k] = level
        if level == len(out):
            out.append([])
        out[level].append(record)
    return out


async def send_rows(
    client: KlaviyoClient,
    records: Sequence[Record],
    build: Builder,
    rows_from_error: RowMapper,
    on_success: OnSuccess | None = None,
) -> list[Outcome]:
    """Send one request for `records`; on a 4xx reject the rows it names and resend the rest.

    Returns:
        Rejected outcomes for bad rows; acknowledged ones for the rest unless
        `on_success` returns its own outcomes (bulk jobs that are polled).
    """
    outcomes: list[Outcome] = []
    pending = list(records)
    while pending:
        request = build(pending)
        try:
            response = await client.call(
                request.operation_id, body=request.body, path=request.path_params
            )
        except RejectedPayload as exc:
            if exc.status == 413 and len(pending) > 1:
                # Too large as a whole (a proxy's limit can be below Klaviyo's 5 MB):
                # no row is at fault, so send each half on its own.
                half = len(pending) // 2
                for part in (pending[:half], pending[half:]):
                    outcomes.extend(
                        await send_rows(client, part, build, rows_from_error, on_success)
                    )
                return outcomes
            rows = {row.index: row for row in rows_from_error(exc.body, pending)}
            if not rows or len(pending) == 1:
                field = next(iter(rows.values())).field if rows else field_of(exc.pointer)
                outcomes.extend(rejected(r, exc.detail, field) for r in pending)
                return outcomes
            outcomes.extend(rejected(pending[i], row.detail, row.field) for i, row in rows.items())
            pending = [r for i, r in enumerate(pending) if i not in rows]
            continue
        if on_success is not None:
            outcomes.extend(await on_success(response, pending))
        else:
            outcomes.extend(acknowledged(r) for r in pending)
        return outcomes
    return outcomes


class Sink:
    """A queue of records for one kind of request, flushed when full or old."""

    def __init__(self, client: KlaviyoClient, max_items: int) -> None:
        self.client = client
        self.settings = client.settings
        self.max_items = max_items
        self.queue: list[Record] = []
        self._first_at: float | None = None

    def process_record(self, record: Record) -> None:
        """Queue one record."""
        if not self.queue:
            self._first_at = time.monotonic()
        self.queue.append(record)

    @property
    def is_full(self) -> bool:
        """True once enough records wait to fill the sink's requests."""
        return len(self.queue) >= min(self.max_items, self.settings.batch.queue_limit)

    @property
    def is_stale(self) -> bool:
        """True once the oldest queued record waited `max_age_seconds`."""
        if self._first_at is None:
            return False
        return time.monotonic() - self._first_at >= self.settings.batch.max_age_seconds

    async def flush(self) -> list[Outcome]:
        """Send everything queued and return its outcomes."""
        batch, self.queue, self._first_at = self.queue, [], None
        return await self.process_batch(batch) if batch else []

    async def process_batch(self, records: list[Record]) -> list[Outcome]:
        """Send a batch (implemented by each sink)."""
        raise NotImplementedError


def _event_identity(record: Record) -> Hashable:
    return (track_event.profile_key(record.fields), record.fields["metric"], record.key)


class EventSink(Sink):
    """Track events: bulk jobs for volume, single creates for a lone event, both at once."""

    def __init__(self, client: KlaviyoClient) -> None:
        super().__init__(client, client.settings.batch.queue_limit)

    async def process_batch(self, records: list[Record]) -> list[Outcome]:
        """Dedupe (profile, metric, unique_id), then share the work between both endpoints."""
        unique: dict[Hashable, Record] = {}
        for record in records:
            unique.setdefault(_event_identity(record), record)
        firsts = list(unique.values())
        if len(firsts) < self.settings.batch.bulk_threshold:
            outcomes = await self._singles_only(firsts)
        else:
            outcomes = await self._shared(firsts)
        return _with_duplicates(outcomes, records)

    async def _single(self, record: Record) -> list[Outcome]:
        return await send_rows(
            self.client,
            [record],
            lambda rs: track_event.build_request(rs[0]),
            track_event.rows_from_error,
        )

    async def _singles_only(self, records: list[Record]) -> list[Outcome]:
        gate = asyncio.Semaphore(self.settings.batch.single_concurrency)

        async def one(record: Record) -> list[Outcome]:
            async with gate:
                return await self._single(record)

        results = await gather_or_cancel(one(r) for r in records)
        return [o for result in results for o in result]

    async def _shared(self, records: list[Record]) -> list[Outcome]:
        pool = deque(records)
        outcomes: list[Outcome] = []
        limits = track_event.LIMITS
        size = self.settings.batch.events_per_request
        budget = type(limits)(max_items=size, max_bytes=limits.max_bytes)

        async def bulk_worker() -> None:
            while pool:
                taken = [pool.popleft() for _ in range(min(size, len(pool)))]
                parts = chunk(taken, budget, track_event.size_of)
                pool.extendleft(reversed([r for part in parts[1:] for r in part]))
                outcomes.extend(
                    await send_rows(
                        self.client, parts[0], track_event.build_batch, track_event.rows_from_error
                    )
                )

        async def single_worker() -> None:
            # Take from the far end, one at a time, only while the pool is deep enough
            # that bulk workers would not finish it sooner on their own.
            while len(pool) > size:
                outcomes.extend(await self._single(pool.pop()))

        workers = [bulk_worker() for _ in range(self.settings.batch.bulk_concurrency)]
        workers += [single_worker() for _ in range(self.settings.batch.single_concurrency)]
        await gather_or_cancel(workers)
        return outcomes


def _with_duplicates(outcomes: list[Outcome], records: Sequence[Record]) -> list[Outcome]:
    """Give every repeat of a (profile, metric, unique_id) its first record's outcome."""
    by_identity = {_event_identity(o.record): o for o in outcomes}
    sent = {id(o.record) for o in outcomes}
    extra = [
        Outcome(r.key, o.status, r, o.reason, o.field, o.learned_ids)
        for r in records
        if id(r) not in sent and (o := by_identity.get(_event_identity(r))) is not None
    ]
    return outcomes + extra


def chunk_records(records: Sequence[Record], module: ModuleType) -> list[list[Record]]:
    """Records of one action split by its batch limits."""
    size_of = getattr(module, "size_of", None) or (lambda r: len(repr(r.fields)))
    return chunk(records, module.LIMITS, size_of)
