"""The Mailchimp sink: queue records, flush on size or age, send each batch.

A flush starts `process_batch` in the background (at most two batches in flight) so
new records keep arriving while earlier ones are sent; `drain` waits for all of them.
Inside a batch, member upserts go first (batch subscribe for volume, else PUT), and
every tag change, event and journey trigger waits only for its own member's upsert,
so the 10 connections stay busy. Non-idempotent sends (events, triggers) are read
back before they are repeated (see `delivery.py`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from connectors.base import Outcome, OutcomeStatus, Record
from connectors.errors import RejectedPayload
from connectors.http import gather_or_cancel
from connectors.mailchimp.actions import (
    audience_of,
    batch_operations,
    batch_subscribe,
    tags,
    upsert_member,
)
from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.delivery import Delivery, acknowledged, rejected
from connectors.mailchimp.settings import MailchimpSettings

MAX_BATCHES_IN_FLIGHT = 2
Member = tuple[str, str]
"""(audience, email)."""


class TagTurn:
    """One tags record's place in its member's queue of tag calls.

    Tag calls of one member must reach Mailchimp in message order: `vip` added by one
    identify and removed by the next must end removed. Calls in flight together can
    land in either order, so each waits for the member's previous tag call (of this
    flush or of an earlier one still in flight) to finish first.
    """

    def __init__(self, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]):
        self.previous = previous
        self.mine = mine

    def waits(self) -> bool:
        """True while an earlier tag call of the member is unfinished."""
        return self.previous is not None and not self.previous.done()

    async def wait(self) -> None:
        """Wait for the member's previous tag call, whatever its outcome."""
        if self.previous is not None:
            await asyncio.shield(self.previous)

    def done(self) -> None:
        """Let the member's next tag call go."""
        if not self.mine.done():
            self.mine.set_result(None)


class MailchimpSink:
    """Batches records of one destination and turns them into outcomes."""

    def __init__(self, settings: MailchimpSettings, client: MailchimpClient) -> None:
        self.settings = settings
        self.client = client
        self.delivery = Delivery(settings, client)
        self._queue: list[Record] = []
        self._oldest: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outcomes: list[Outcome] = []
        self._ready: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._tag_tail: dict[Member, asyncio.Future[None]] = {}

    async def process_record(self, record: Record) -> None:
        """Queue one record; flush when the queue is full or its oldest record is old."""
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._queue.append(record)
        full = len(self._queue) >= self.settings.batch.max_records
        if full or time.monotonic() - self._oldest >= self.settings.batch.max_age_seconds:
            await self.flush()

    async def flush(self) -> None:
        """Start sending everything queued (in the background)."""
        records, self._queue, self._oldest = self._queue, [], None
        if not records:
            return
        loop = asyncio.get_running_loop()
        turns: dict[str, TagTurn] = {}
        for record in records:
            if record.action == upsert_member.NAME:
                self._ready[self._member(record)] = loop.create_future()
            elif record.action == tags.NAME and record.key not in turns:
                mine: asyncio.Future[None] = loop.create_future()
                previous = self._tag_tail.get(self._member(record))
                self._tag_tail[self._member(record)] = mine
                turns[record.key] = TagTurn(previous, mine)
        self._forget_finished_tags()
        self._tasks.append(asyncio.create_task(self.process_batch(records, turns)))
        running = [task for task in self._tasks if not task.done()]
        while len(running) > MAX_BATCHES_IN_FLIGHT:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running = [task for task in running if not task.done()]
        await self._reap(wait=False)

    async def drain(self) -> list[Outcome]:
        """Send everything queued and return every outcome since the last drain."""
        await self.flush()
        await self._reap(wait=True)
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    async def _reap(self, *, wait: bool) -> None:
        if wait and self._tasks:
            # Returns once all are done, or at the first that failed.
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        done = [task for task in self._tasks if task.done()]
        self._tasks = [task for task in self._tasks if not task.done()]
        failed = next((t for t in done if not t.cancelled() and t.exception()), None)
        if failed is not None:
            # A batch that failed (e.g. retries exhausted) fails the run: batches still
            # in flight would only keep sending and backing off for nothing.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
            failed.result()
        for task in done:
            task.result()

    def _forget_finished_tags(self) -> None:
        self._tag_tail = {m: f for m, f in self._tag_tail.items() if not f.done()}

    async def process_batch(
        self, records: Sequence[Record], turns: dict[str, TagTurn] | None = None
    ) -> None:
        """Send one batch of records and collect their outcomes."""
        turns = turns if turns is not None else {}
        all_upserts = [r for r in records if r.action == upsert_member.NAME]
        try:
            threshold = self.settings.batch.operations_threshold
            if threshold is not None and len(records) >= threshold:
                # Operations of one batch run in no set order: a member's tag call that
                # must follow another of its tag calls is sent directly, in turn.
                held = [r for r in records if r.key in turns and turns[r.key].waits()]
                held_keys = {r.key for r in held}
                batched = [r for r in records if r.key not in held_keys]
                records = [*held, *await self._via_batches(batched)]
                left = {r.key for r in records}
                for record in batched:
                    if record.key in left:
                        continue
                    if record.action == upsert_member.NAME:
                        self._member_done(record)
                    elif record.key in turns:
                        turns[record.key].done()
            upserts = [r for r in records if r.action == upsert_member.NAME]
            others = [r for r in records if r.action != upsert_member.NAME]
            await gather_or_cancel(
                [self._upserts(upserts), *(self._after_member(r, turns) for r in others)]
            )
        finally:
            for record in all_upserts:  # never leave a later record waiting on a failed batch
                self._member_done(record)
            for turn in turns.values():
                turn.done()

    def _member(self, record: Record) -> tuple[str, str]:
        return audience_of(record.fields, self.settings.list_id), record.fields["email"]

    async def _after_member(self, record: Record, turns: Mapping[str, TagTurn]) -> None:
        ready = self._ready.get(self._member(record))
        if ready is not None:
            await asyncio.shield(ready)
        turn = turns.get(record.key)
        if turn is None:
            self._outcomes.append(await self.delivery.send(record))
            return
        try:
            await turn.wait()
            self._outcomes.append(await self.delivery.send(record))
        finally:
            turn.done()

    def _member_done(self, record: Record) -> None:
        member = self._member(record)
        ready = self._ready.get(member)
        if ready is not None and not ready.done():
            ready.set_result(None)
            del self._ready[member]

    async def _upserts(self, records: Sequence[Record]) -> None:
        try:
            first: dict[tuple[str, str], Record] = {}
            repeats: list[Record] = []
            for record in records:
                if self._member(record) in first:
                    repeats.append(record)
                else:
                    first[self._member(record)] = record
            # An email change is a PATCH of the old member: batch subscribe would add a
            # second member under the new address.
            unique = [r for r in first.values() if not r.fields.get("previous_hashes")]
            moving = [r for r in first.values() if r.fields.get("previous_hashes")]
            if len(unique) >= self.settings.batch.batch_subscribe_min:
                await gather_or_cancel(
                    [self._batch_subscribe(unique), self._each(moving, self._put)]
                )
            else:
                await self._each([*unique, *moving], self._put)
            for record in repeats:  # in order, after the first upsert of that member
                await self._put(record)
        finally:
            for record in records:
                self._member_done(record)

    async def _each(
        self, records: Sequence[Record], send: Callable[[Record], Coroutine[Any, Any, None]]
    ) -> None:
        await gather_or_cancel(send(record) for record in records)

    async def _put(self, record: Record) -> None:
        try:
            outcome = await self.delivery.upsert(record)
        finally:
            self._member_done(record)
        self._outcomes.append(outcome)

    async def _batch_subscribe(self, records: Sequence[Record]) -> None:
        """Batch subscribe calls grouped by audience, spread over the connections."""
        per_request = min(
            self.settings.batch.members_per_request,
            max(1, math.ceil(len(records) / self.settings.max_connections)),
        )
        by_audience: dict[str, list[Record]] = {}
        for record in records:
            by_audience.setdefault(self._member(record)[0], []).append(record)
        chunks = [
            (list_id, group[i : i + per_request])
            for list_id, group in by_audience.items()
            for i in range(0, len(group), per_request)
        ]
        await gather_or_cancel(self._subscribe_chunk(*chunk) for chunk in chunks)

    async def _subscribe_chunk(self, list_id: str, records: Sequence[Record]) -> None:
        s = self.settings
        request = batch_subscribe.build_request(
            list_id, [r.fields for r in records], s.status_if_new, s.skip_merge_validation
        )
        try:
            response = await self.client.request(
                request.method, request.path, json=request.json, params=request.params
            )
        except RejectedPayload:
            await self._each(records, self._put)  # find which member Mailchimp refused
            return
        try:
            errors = batch_subscribe.parse_errors(response.json())
        except (ValueError, AttributeError, TypeError):
            # A cut-short or odd answer says nothing per member: PUT each (idempotent).
            await self._each(records, self._put)
            return
        again: list[Record] = []
        for record in records:
            error = errors.get(record.fields["email"])
            if error is None:
                self._outcomes.append(acknowledged(record))
                self._member_done(record)
            elif error.code == batch_subscribe.CONTACT_EXISTS:
                again.append(record)
            else:
                self._outcomes.append(rejected(record, error.error, error.field))
                self._member_done(record)
        await self._each(again, self._put)

    async def _via_batches(self, records: Sequence[Record]) -> list[Record]:
        """Send what can go through POST /batches; return the records left to send."""
        runner = batch_operations.BatchRunner(self.settings, self.client)
        outcomes, left = await runner.run(records)
        self._outcomes.extend(outcomes)
        return left


def status_of(outcomes: Sequence[Outcome], key: str) -> OutcomeStatus | None:
    """The status of `key` among outcomes (tests and tools)."""
    return next((o.status for o in outcomes if o.key == key), None)
