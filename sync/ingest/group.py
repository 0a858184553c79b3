"""Group commit: requests arriving while a commit runs are committed together next.

One writer per process keeps the inbox's write transactions few and short however many
requests arrive at once (SQLite has one writer at a time; each request committing on
its own would queue on the write lock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from fastapi.concurrency import run_in_threadpool

from sync.ingest.inbox import InboxBatch, InboxCommit, InboxWriter
from sync.ingest.validate import InvalidMessage, ValidMessage

_DATA_ERRORS = (sa.exc.DataError, sa.exc.IntegrityError)
"""Errors about what was written, not about the store: they concern one request."""


@dataclass(slots=True)
class _Job:
    batch: InboxBatch
    done: asyncio.Future[InboxCommit]


def _fail(jobs: Sequence[_Job], exc: BaseException) -> None:
    for job in jobs:
        if not job.done.done():
            job.done.set_exception(exc)


@dataclass
class GroupCommitter:
    """Commits requests' messages in groups, on a worker thread.

    Attributes:
        writer: The inbox writer.
        max_jobs: Most requests in one transaction.
    """

    writer: InboxWriter
    max_jobs: int = 200
    _pending: list[_Job] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def commit(
        self,
        valid: Sequence[ValidMessage],
        invalid: Sequence[InvalidMessage],
        *,
        channel: str,
        received_at: datetime,
    ) -> InboxCommit:
        """Wait until this request's messages are committed; raise what the commit raised."""
        loop = asyncio.get_running_loop()
        job = _Job(InboxBatch(valid, invalid, channel, received_at), loop.create_future())
        self._pending.append(job)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        # Shielded: a client hanging up does not undo a commit already under way.
        return await asyncio.shield(job.done)

    async def _drain(self) -> None:
        while self._pending:
            jobs, self._pending = self._pending[: self.max_jobs], self._pending[self.max_jobs :]
            try:
                results = await run_in_threadpool(
                    self.writer.commit_many, [job.batch for job in jobs]
                )
            except _DATA_ERRORS as exc:
                if len(jobs) == 1:
                    _fail(jobs, exc)
                else:
                    await self._commit_alone(jobs)
                continue
            except Exception as exc:  # the store failed: every request of the group learns it
                _fail(jobs, exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.done.done():
                    job.done.set_result(result)

    async def _commit_alone(self, jobs: list[_Job]) -> None:
        """One request's data was refused by the store: commit each request on its own,
        so only that request fails and the others are stored."""
        for job in jobs:
            try:
                result = await run_in_threadpool(self.writer.commit_many, [job.batch])
            except Exception as exc:
                _fail([job], exc)
                continue
            if not job.done.done():
                job.done.set_result(result[0])
