"""One sync run: read a batch, resolve identity, decide triggers, send, commit; repeat.

Per batch, and only after every destination answered for it, one transaction records
the acknowledged keys, the rejected rows, the run counters and the new bookmark. A run
killed anywhere resends nothing acknowledged (the ledger is checked before any API
call) and skips nothing unacknowledged (the bookmark never runs ahead of the ledger).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import httpx

from connectors.base import (
    Customer,
    Destination,
    Outcome,
    OutcomeStatus,
    Record,
    SourceBatch,
    Suppressed,
)
from connectors.errors import ESPError, SourceUnavailable
from connectors.http import gather_or_cancel
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow
from sync.config import Config, ConfigError
from sync.metrics import CountingTransport, DryRunTransport
from sync.redact import redact_text
from sync.registry import build_destination, build_source, identity_resolver, trigger_engine
from sync.report import RunReport
from sync.store.locks import release_dead_holder
from sync.store.retention import Retention, prune
from sync.store.state import BatchCommit, StateStore

LOCK_TTL = timedelta(minutes=10)
PRUNE_EVERY_S = 3600.0
"""A process prunes the state store after a completed run at most this often."""
PRUNE_BUDGET_S = 5.0
"""Seconds of pruning per run; a larger backlog is worked off by the next runs."""
PRUNE_AGAIN_S = 60.0
"""How soon a run prunes again when the last one left rows due (or failed)."""
log = logging.getLogger(__name__)


class SyncBusy(Exception):
    """Another run of the same sync holds its lock."""


class FatalRunError(Exception):
    """The run cannot go on: credentials refused or a service unreachable."""


@dataclass(slots=True)
class _Delivery:
    outcomes: list[tuple[str, Outcome]]
    rejects: list[RejectedRow]
    counts: Counter[str]
    learned: list[tuple[str, dict[str, str]]]
    fallbacks: Counter[str]


class SyncEngine:
    """Runs syncs from a config against a state store.

    Args:
        config: The validated config.
        store: The state store (the only writer of state).
        transports: Per-destination httpx transports (tests, sandbox); default: network.
        dry_run_out: Where `--dry-run` writes the requests it would send.
    """

    def __init__(
        self,
        config: Config,
        store: StateStore,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        dry_run_out: IO[str] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.transports = dict(transports or {})
        self.dry_run_out = dry_run_out
        self._identity = identity_resolver(config, store)
        self._triggers = trigger_engine(config, store)
        self._prune_at = 0.0  # time.monotonic() from which a run may prune again

    async def run_sync(
        self,
        name: str,
        *,
        dry_run: bool = False,
        max_batches: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[RunReport], None] | None = None,
    ) -> RunReport:
        """Run one sync to the end of its source (or `max_batches`, or `stop`).

        Raises:
            ConfigError: the sync is not configured.
            SyncBusy: another run of it is in progress.
            FatalRunError: credentials refused or a destination unreachable.
        """
        if name not in self.config.syncs:
            raise ConfigError(f"no sync named {name!r} (known: {', '.join(self.config.syncs)})")
        lock, holder = self._lock(name)
        # Released whatever fails below (the run record's writes included): a leaked lock
        # would hold every other run of this sync off for its whole TTL.
        try:
            self.store.abandon_runs(name)
            report = RunReport(
                sync=name, run_id=self.store.start_run(name, dry_run=dry_run), dry_run=dry_run
            )
            beat = asyncio.create_task(self._keep_lock(lock, holder))
            try:
                await self._run(name, report, dry_run, max_batches, stop, on_batch, (lock, holder))
                report.status = "completed"
                if not dry_run and not (stop and stop.is_set()):
                    self._maybe_prune(report)
            except (ESPError, SourceUnavailable) as exc:  # refused, or retries exhausted
                report.status = "failed"
                report.errors.append(str(exc))
                raise FatalRunError(str(exc)) from exc
            except BaseException as exc:  # SystemExit, KeyboardInterrupt too: not "running"
                report.status = "failed"
                report.errors.append(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                beat.cancel()
                report.ended_at = datetime.now(UTC)
                self.store.finish_run(
                    report.run_id,
                    report.status,
                    api_calls=report.api_calls,
                    errors=report.errors,
                    counts=_extra_counts(report),
                )
        finally:
            self.store.release_lock(lock, holder)
        return report

    def _maybe_prune(self, report: RunReport) -> None:
        """Apply `[state]` retention, once an hour, counted as `pruned.<table>` in `report`.

        Only completed runs prune (not dry runs, not stopped ones), for about
        `PRUNE_BUDGET_S` at most: nothing waits for old rows, and the next run must start
        on time. A failure is logged and leaves the run completed: its batches are
        committed already.
        """
        if time.monotonic() < self._prune_at:
            return
        retention = Retention.of(self.config.state)
        try:
            pruned = prune(self.store, retention, budget_s=PRUNE_BUDGET_S)
        except Exception as exc:  # a store blip, a lock timeout: the next run tries again
            self._prune_at = time.monotonic() + PRUNE_AGAIN_S
            reason = redact_text(str(exc), self.store.secrets)  # a driver may echo the URL
            log.warning("state store retention: pruning failed, retried later: %s", reason)
            return
        wait = PRUNE_EVERY_S if pruned.complete else PRUNE_AGAIN_S
        self._prune_at = time.monotonic() + wait
        deleted = {f"pruned.{name}": n for name, n in pruned.counts.items() if n}
        report.counts.update(deleted)
        if deleted:
            log.info("state store retention: deleted %s", deleted)

    async def _keep_lock(self, lock: str, holder: str) -> None:
        """Refresh the lock every third of its TTL while the run lasts.

        Batches refresh it too, but one batch can outlast the TTL (a warehouse's first
        query, an ESP's long backoff): the lock would expire under a live run and a
        second process could start the same sync. The source reads on a worker thread,
        so the event loop is free to beat meanwhile.
        """
        while True:
            await asyncio.sleep(LOCK_TTL.total_seconds() / 3)
            try:
                self.store.refresh_lock(lock, holder, LOCK_TTL)
            except Exception as exc:  # a store blip: the next beat or batch refreshes it
                log.warning("could not refresh the lock %s: %s", lock, exc)

    def _lock(self, name: str) -> tuple[str, str]:
        """Take the sync's lock (from a dead holder on this host too); SyncBusy if held."""
        lock, holder = (
            f"sync:{name}",
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
        if not self.store.acquire_lock(lock, holder, LOCK_TTL) and not (
            release_dead_holder(self.store, name)
            and self.store.acquire_lock(lock, holder, LOCK_TTL)
        ):
            raise SyncBusy(f"sync {name!r} is already running elsewhere")
        return lock, holder

    async def _run(
        self,
        name: str,
        report: RunReport,
        dry_run: bool,
        max_batches: int | None,
        stop: threading.Event | None,
        on_batch: Callable[[RunReport], None] | None,
        held: tuple[str, str],
    ) -> None:
        sync = self.config.syncs[name]
        source = build_source(sync.source, self.config.sources[sync.source], self.store)
        destinations = self._destinations(sync.destinations, report, dry_run)
        bookmark = self.store.get_bookmark(name, sync.source)
        try:
            batches = _threaded(source.read(bookmark, batch_size=sync.batch_size))
            count = 0
            async for batch in batches:
                await self._process(name, sync.source, batch, destinations, report, dry_run)
                count += 1
                if not self.store.refresh_lock(*held, LOCK_TTL):
                    # Expired and taken by another run: going on would run the sync twice.
                    raise FatalRunError(f"sync {name!r} lost its lock to another run")
                if on_batch:
                    on_batch(report)
                if (max_batches and count >= max_batches) or (stop and stop.is_set()):
                    break
            else:
                await self._process(
                    name, sync.source, SourceBatch([], [], None), destinations, report, dry_run
                )
        finally:
            for destination in destinations:
                await destination.aclose()
            if self._triggers is not None:
                report.triggers.update(self._triggers.decisions_summary(reset=True))

    def _destinations(
        self, names: Sequence[str], report: RunReport, dry_run: bool
    ) -> list[Destination]:
        built = []
        for dest in names:
            inner: httpx.AsyncBaseTransport
            if dry_run:
                inner = DryRunTransport(self.dry_run_out or _NullIO())
            else:
                inner = self.transports.get(dest) or httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=50)
                )
            transport = CountingTransport(inner, report.api_calls)
            built.append(build_destination(dest, self.config.destinations[dest], transport))
        return built

    async def _process(
        self,
        sync: str,
        source: str,
        batch: SourceBatch,
        destinations: Sequence[Destination],
        report: RunReport,
        dry_run: bool,
    ) -> None:
        """Send one batch everywhere, then commit it (or, in a dry run, only count it)."""
        counts: Counter[str] = Counter(
            read=batch.read or len(batch.messages) + len(batch.rejects),
            messages=len(batch.messages),
        )
        counts["rejected.source"] = len(batch.rejects)
        customers = self._resolve(batch.messages, dry_run, counts)
        emissions = self._decide(batch.messages, customers, dry_run, report)
        # A destination failing the run cancels the others' sends at once: left running,
        # they would go on (and back off) beside the next run of a long-lived loop.
        deliveries = await gather_or_cancel(
            self._deliver(sync, report.run_id, d, batch.messages, emissions, customers, dry_run)
            for d in destinations
        )
        outcomes = [o for d in deliveries for o in d.outcomes]
        rejects = list(batch.rejects) + [r for d in deliveries for r in d.rejects]
        for delivery in deliveries:
            counts.update(delivery.counts)
            report.fallbacks.update(delivery.fallbacks)
        report.counts.update(counts)
        if dry_run:
            report.dry_run_requests = sum(report.api_calls.values())
            return
        self.store.commit_batch(
            BatchCommit(report.run_id, sync, source, batch.bookmark, outcomes, rejects, +counts)
        )
        for delivery in deliveries:
            for customer_id, ids in delivery.learned:
                self._identity.learn(customer_id, ids)
        self._mark_triggers(emissions, outcomes, report)

    def _resolve(
        self, messages: Sequence[Message], dry_run: bool, counts: Counter[str]
    ) -> dict[str, Customer]:
        if not messages:
            return {}
        resolution = self._identity.resolve(messages, persist=not dry_run)
        counts["identity.conflicts"] += len(resolution.conflicts)
        counts["identity.merges"] += len(resolution.merges)
        counts["identity.unresolved"] += len(resolution.unresolved)
        return resolution.customers

    def _decide(
        self,
        messages: Sequence[Message],
        customers: dict[str, Customer],
        dry_run: bool,
        report: RunReport,
    ) -> list[Any]:
        if self._triggers is None:
            return []
        if dry_run:  # decide on a rolled-back copy: a dry run leaves no trigger state
            emissions = self._triggers.preview(messages, customers)
        else:
            if messages:
                self._triggers.observe(messages, customers)
            emissions = self._triggers.due()
        report.triggers["emitted"] += len(emissions)
        return [self._current(e) for e in emissions]

    def _current(self, emission: Any) -> Any:
        """The emission addressed to who the customer is now, not when the cart started.

        A start event may precede the identify call that names the customer's email; the
        instance id (the unique_id) stays the same, so this cannot cause a second send.
        """
        snapshot: Customer | None = emission.customer
        if snapshot is None:
            return emission
        customer = self._identity.customer(snapshot.customer_id)
        if customer is None:
            return emission
        raw = dict(emission.message.raw)
        context = dict(raw.get("context") or {})
        traits = dict(context.get("traits") or {})
        for kind, key in (("email", "email"), ("phone", "phone")):
            value = customer.first(kind)
            if value and not traits.get(key):
                traits[key] = value
        context["traits"] = traits
        raw["context"] = context
        if not raw.get("userId") and customer.first("user_id"):
            raw["userId"] = customer.first("user_id")
        message = parse_message(raw, emission.message.source_ref)
        return replace(emission, message=message, customer=customer)

    async def _deliver(
        self,
        sync: str,
        run_id: int,
        destination: Destination,
        messages: Sequence[Message],
        emissions: Sequence[Any],
        customers: Mapping[str, Customer],
        dry_run: bool,
    ) -> _Delivery:
        name = destination.name
        counts: Counter[str] = Counter()
        rejects: list[RejectedRow] = []
        records: dict[str, tuple[Record, Message]] = {}
        for message, customer in _inputs(name, messages, emissions, customers):
            for item in destination.map(message, customer):
                if isinstance(item, Suppressed):
                    counts[f"{name}.records"] += 1
                    counts[f"{name}.suppressed"] += 1
                    counts[f"{name}.suppressed.{item.reason}"] += 1
                    continue
                if isinstance(item, RejectedRow):
                    rejects.append(
                        replace(
                            item,
                            destination=name,
                            stage=item.stage if item.stage != "source" else "mapping",
                            payload=_resendable(item.payload, message),
                        )
                    )
                    counts[f"{name}.rejected.mapping"] += 1
                    continue
                counts[f"{name}.records"] += 1
                if item.key in records:
                    counts[f"{name}.duplicate_in_batch"] += 1
                    continue
                records[item.key] = (item, message)
        status = self.store.ledger_status(name, records)
        to_send: list[Record] = []
        for key, (record, _message) in records.items():
            state = status.get(key)
            if state == "acknowledged":
                counts[f"{name}.already_sent"] += 1
            else:
                to_send.append(replace(record, uncertain=True) if state == "pending" else record)
        if destination.intent_log and to_send and not dry_run:
            self.store.mark_pending(run_id, sync, name, to_send)
        for record in to_send:
            await destination.process_record(record)
        outcomes = await destination.drain()
        learned: list[tuple[str, dict[str, str]]] = []
        fallbacks: Counter[str] = Counter()
        for outcome in outcomes:
            counts[f"{name}.{outcome.status.value}"] += 1
            if outcome.status is OutcomeStatus.ACKNOWLEDGED:
                # Counted once the ESP took the record (in a dry run, every record the run
                # would send): a reject is counted when `espbridge retry` delivers it.
                record = outcome.record
                fallbacks.update(f"{name}.{record.action}.{f}" for f in record.fallbacks)
            found = records.get(outcome.key)
            if outcome.status is OutcomeStatus.REJECTED:
                rejects.append(_reject(name, outcome, found))
            customer = customers.get(found[1].message_id) if found else None
            if outcome.learned_ids and customer:
                learned.append((customer.customer_id, dict(outcome.learned_ids)))
        return _Delivery([(name, o) for o in outcomes], rejects, counts, learned, fallbacks)

    def _mark_triggers(
        self, emissions: Sequence[Any], outcomes: Sequence[tuple[str, Outcome]], report: RunReport
    ) -> None:
        if self._triggers is None or not emissions:
            return
        rejected = {o.key for _d, o in outcomes if o.status is OutcomeStatus.REJECTED}
        self._triggers.mark(
            [e.instance_id for e in emissions if e.instance_id not in rejected], "delivered"
        )
        self._triggers.mark(
            [e.instance_id for e in emissions if e.instance_id in rejected], "rejected"
        )

    async def retry(self, name: str, rejects: Sequence[Mapping[str, Any]]) -> RunReport:
        """Send again the rejected rows that carry their message (after a fix).

        Holds the sync's lock as a run does, so a retry never interleaves with a
        scheduled run of the same sync (SyncBusy while one is in progress). The rows sent
        again are marked retried once the batch is processed (what the ESP refuses again
        becomes a new rejected row of this run); a row that cannot be sent again (no
        message kept, or one that no longer parses) stays in the ledger unmarked, counted
        as `retry.not_resendable` with its reason in the report's errors.
        """
        if name not in self.config.syncs:
            raise ConfigError(f"no sync named {name!r} (known: {', '.join(self.config.syncs)})")
        lock, holder = self._lock(name)
        try:
            self.store.abandon_runs(name)
            return await self._retry(name, rejects)
        finally:
            self.store.release_lock(lock, holder)

    async def _retry(self, name: str, rejects: Sequence[Mapping[str, Any]]) -> RunReport:
        messages: list[Message] = []
        resent: list[int] = []
        report = RunReport(sync=name, run_id=self.store.start_run(name))
        for row in rejects:
            raw = (row.get("payload") or {}).get("message")
            try:
                if not isinstance(raw, dict):
                    raise MessageError("message", "the rejected row kept no message to send")
                messages.append(parse_message(raw, str(row["source_ref"])))
            except MessageError as exc:
                report.counts["retry.not_resendable"] += 1
                report.errors.append(f"{row['source_ref']}: not sent again: {exc}")
                continue
            resent.append(int(row["id"]))
        sync = self.config.syncs[name]
        destinations = self._destinations(sync.destinations, report, dry_run=False)
        try:
            await self._process(
                name, sync.source, SourceBatch(messages, [], None), destinations, report, False
            )
            self.store.mark_retried(resent)
            report.status = "completed"
        except ESPError as exc:  # refused, or retries exhausted: as a run, exit 3
            report.status = "failed"
            report.errors.append(str(exc))
            raise FatalRunError(str(exc)) from exc
        except Exception as exc:
            report.status = "failed"
            report.errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for destination in destinations:
                await destination.aclose()
            report.ended_at = datetime.now(UTC)
            self.store.finish_run(
                report.run_id,
                report.status,
                api_calls=report.api_calls,
                errors=report.errors,
                counts=_extra_counts(report),
            )
        return report


def _resendable(payload: Mapping[str, Any] | None, message: Message) -> dict[str, Any]:
    """A mapping reject's payload, holding the message `espbridge retry` sends again.

    Destinations describe the rejected record in their own way (the raw message, its id
    and type); what a retry needs, and the ledger shows, is the message itself.
    """
    if payload and "message" in payload:
        return dict(payload)
    return {"message": dict(message.raw)}


def _inputs(
    destination: str,
    messages: Sequence[Message],
    emissions: Sequence[Any],
    customers: Mapping[str, Customer],
) -> Iterator[tuple[Message, Customer | None]]:
    for message in messages:
        yield message, customers.get(message.message_id)
    for emission in emissions:
        targets = getattr(emission, "destinations", None)
        if not targets or destination in targets:
            yield emission.message, getattr(emission, "customer", None)


def _reject(
    destination: str, outcome: Outcome, found: tuple[Record, Message] | None
) -> RejectedRow:
    payload: dict[str, Any] = {"fields": dict(outcome.record.fields)}
    if found:
        payload["message"] = dict(found[1].raw)
    return RejectedRow(
        source_ref=outcome.record.source_ref,
        field=outcome.field,
        reason=outcome.reason or "rejected by the destination",
        stage="destination",
        payload=payload,
        destination=destination,
        key=outcome.key,
    )


def _extra_counts(report: RunReport) -> dict[str, int]:
    # Trigger and fallback counters are kept in the run record's counts too.
    extra = {f"triggers.{k}": v for k, v in report.triggers.items()}
    extra.update({f"fallbacks.{k}": v for k, v in report.fallbacks.items()})
    # Counted after the last batch was committed (`SyncEngine._maybe_prune`).
    extra.update({k: v for k, v in report.counts.items() if k.startswith("pruned.")})
    return extra if not report.dry_run else {}


async def _threaded(iterator: Iterator[SourceBatch]) -> Any:
    """Iterate a blocking source on one worker thread, keeping the event loop free."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="source") as pool:
        sentinel = object()
        while True:
            batch = await loop.run_in_executor(pool, next, iterator, sentinel)
            if batch is sentinel:
                return
            yield batch


class _NullIO:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None
