"""What the ingest routes do: authenticate, read, judge each message, commit, answer.

A request is answered 200 only after its messages are committed to the inbox. Each
message is judged on its own: refused ones are listed in a 400 (and kept in the
rejects ledger), and the others are stored all the same. Segment libraries do not
retry a 400, and a retried batch is harmless: each messageId is stored once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from sync.ingest.auth import basic_write_key, is_write_key, webhook_signed
from sync.ingest.body import IngestError, parse_json, read_body
from sync.ingest.group import GroupCommitter
from sync.ingest.inbox import InboxCommit, InboxWriter
from sync.ingest.metrics import IngestMetrics
from sync.ingest.models import Accepted, Health, RefusedMessage, SegmentError
from sync.ingest.settings import IngestSettings
from sync.ingest.validate import InvalidMessage, ValidMessage, check_message
from sync.redact import redact
from sync.store.state import StateStore

TRACKING = "tracking-api"
WEBHOOK = "webhook"


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A Segment-style `{code, message}` answer (503s say when to retry; a 408 closes the
    connection, whose unread body would otherwise hold it until the keep-alive timeout)."""
    body = SegmentError(code=code, message=message, **extra).model_dump()
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 408:
        headers = {"Connection": "close"}
    return JSONResponse(body, status_code=status, headers=headers)


def _refusal(commit: InboxCommit, invalid: Sequence[InvalidMessage]) -> JSONResponse:
    first = invalid[0]
    what = f"batch[{first.index}].{first.field}: {first.reason}"
    more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
    message = f"{len(invalid)} message(s) refused: {what}{more}; the others were stored"
    rejected = [
        RefusedMessage(index=m.index, messageId=m.message_id, field=m.field, reason=m.reason)
        for m in invalid
    ]
    return error_response(
        400,
        "invalid_messages",
        message,
        stored=commit.stored,
        duplicates=commit.duplicates,
        rejected=rejected,
    )


def _unauthorized(checked: ValidMessage | InvalidMessage) -> InvalidMessage:
    """A message of a batch authenticated by its other messages' keys, without its own."""
    reason = "no valid write key: this batch carries its keys per message, and this one has none"
    if isinstance(checked, InvalidMessage):
        return replace(checked, field="writeKey", reason=f"{reason} (and {checked.reason})")
    payload = redact(orjson.loads(checked.raw))
    return InvalidMessage(checked.index, checked.message_id, "writeKey", reason, payload)


BATCH_DEFAULTS = ("context", "integrations")
"""Objects a `/v1/batch` body may carry once for all its calls (Segment's HTTP API)."""


def with_batch_defaults(messages: list[Any], body: dict[str, Any]) -> list[Any]:
    """Each message with the batch's `context` and `integrations` under its own.

    A batch-level object applies to every call of the batch; a key the message sets
    itself wins (one level deep: a message's `context.traits` replaces the batch's).
    """
    shared = {k: body[k] for k in BATCH_DEFAULTS if isinstance(body.get(k), dict) and body[k]}
    if not shared:
        return messages
    out: list[Any] = []
    for message in messages:
        if isinstance(message, dict):
            message = dict(message)
            for key, defaults in shared.items():
                own = message.get(key)
                if own is None:
                    message[key] = dict(defaults)
                elif isinstance(own, dict):
                    message[key] = {**defaults, **own}
        out.append(message)
    return out


class Ingest:
    """The request handling behind the routes."""

    def __init__(
        self,
        settings: IngestSettings,
        store: StateStore,
        metrics: IngestMetrics,
        on_commit: Callable[[], None] | None,
    ) -> None:
        self.settings = settings
        self.writer = InboxWriter(store)
        self.committer = GroupCommitter(self.writer)
        self.metrics = metrics
        self.on_commit = on_commit

    async def tracking(self, request: Request, call_type: str | None) -> Response:
        """A Tracking API call: `/v1/batch` (call_type None) or a single call."""
        header_key = basic_write_key(request.headers.get("authorization"))
        if header_key is not None and not is_write_key(header_key, self.settings.write_keys):
            return error_response(401, "unauthorized", "unknown write key")
        body = parse_json(await self._read(request))
        if not isinstance(body, dict):
            raise IngestError(400, "invalid_request", "the body must be a JSON object")
        keyless: frozenset[int] | None = frozenset()
        if header_key is None and not is_write_key(body.get("writeKey"), self.settings.write_keys):
            keyless = self._keyless(body) if call_type is None else None
            if keyless is None:
                return error_response(
                    401,
                    "unauthorized",
                    "a write key is required: Basic auth "
                    "(write key as username, empty password) or `writeKey` in the body",
                )
        if call_type is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise IngestError(400, "invalid_request", "`batch` must be an array of messages")
            messages = with_batch_defaults(messages, body)
        else:
            messages = [body]
        sent_at = body.get("sentAt")
        return await self._store(messages, TRACKING, call_type, sent_at, keyless or frozenset())

    def _keyless(self, body: dict[str, Any]) -> frozenset[int] | None:
        """A batch without a key of its own may carry one in each message (some clients
        do, and Segment accepts it): the indexes of its messages without a valid one, or
        None when no message has one (the request is not authenticated at all)."""
        messages = body.get("batch")
        if not isinstance(messages, list):
            return None
        keys = self.settings.write_keys
        keyed = [isinstance(m, dict) and is_write_key(m.get("writeKey"), keys) for m in messages]
        if not any(keyed):
            return None
        return frozenset(i for i, ok in enumerate(keyed) if not ok)

    async def webhook(self, request: Request) -> Response:
        """A delivery of Segment's Webhooks destination, signed with `X-Signature`."""
        secret = self.settings.webhook_secret
        if secret is None:
            return error_response(401, "unauthorized", "webhook ingest is off: no webhook_secret")
        raw = await self._read(request)
        body = parse_json(raw)
        signed = webhook_signed(
            secret,
            request.headers.get("x-signature"),
            raw,
            body,
            first_event_ok=self.settings.webhook_batch_first_event_signature,
        )
        if not signed:
            return error_response(401, "unauthorized", "missing or wrong X-Signature")
        messages = body if isinstance(body, list) else [body]
        return await self._store(messages, WEBHOOK, None, None)

    async def _read(self, request: Request) -> bytes:
        limit, timeout = self.settings.max_batch_bytes, self.settings.body_timeout_seconds
        return await read_body(request, limit, timeout)

    async def _store(
        self,
        messages: list[Any],
        channel: str,
        call_type: str | None,
        sent_at: Any,
        keyless: frozenset[int] = frozenset(),
    ) -> Response:
        limit = self.settings.max_batch_messages
        if len(messages) > limit:
            raise IngestError(400, "batch_too_large", f"{len(messages)} messages; at most {limit}")
        now = datetime.now(UTC)
        checked = [
            check_message(
                i,
                m,
                received_at=now,
                sent_at=sent_at,
                call_type=call_type,
                max_bytes=self.settings.max_message_bytes,
            )
            for i, m in enumerate(messages)
        ]
        checked = [_unauthorized(c) if c.index in keyless else c for c in checked]
        valid = [c for c in checked if isinstance(c, ValidMessage)]
        invalid = [c for c in checked if isinstance(c, InvalidMessage)]
        self.metrics.received.labels(channel).inc(len(messages))
        try:
            commit = await self.committer.commit(valid, invalid, channel=channel, received_at=now)
        except sa.exc.SQLAlchemyError:
            return error_response(503, "unavailable", "the inbox could not be written; retry")
        self._count(commit, invalid, channel)
        if invalid:
            return _refusal(commit, invalid)
        return JSONResponse(
            Accepted(stored=commit.stored, duplicates=commit.duplicates).model_dump()
        )

    def _count(self, commit: InboxCommit, invalid: Sequence[InvalidMessage], channel: str) -> None:
        self.metrics.stored.labels(channel).inc(commit.stored)
        self.metrics.duplicates.labels(channel).inc(commit.duplicates)
        for m in invalid:
            self.metrics.rejected.labels(channel, m.field).inc()
        if commit.stored and self.on_commit is not None:
            self.on_commit()

    async def health(self) -> JSONResponse:
        """Reach the state store."""
        try:
            newest = await run_in_threadpool(self.writer.max_id)
        except sa.exc.SQLAlchemyError:
            return JSONResponse(Health(status="unavailable").model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", inbox_max_id=newest).model_dump())
