"""Sending one record, exactly once where Mailchimp gives no idempotency key.

Member upserts and tag changes are idempotent and simply retried. Member events and
journey triggers are not: after an answer is lost (`UncertainDelivery`) or for a
record the ledger holds as pending (`Record.uncertain`), the member's events are read
back (`GET …/events`, looking for the record key in `espbridge_key`) before anything
is sent again. Journey triggers use marker events (see `actions/journey_trigger.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from connectors.base import Outcome, OutcomeStatus, Record
from connectors.errors import MalformedResponse, RejectedPayload, TransportFailure
from connectors.mailchimp.actions import (
    ApiRequest,
    audience_of,
    journey_trigger,
    member_event,
    tags,
    upsert_member,
)
from connectors.mailchimp.client import MailchimpClient, UncertainDelivery
from connectors.mailchimp.settings import MailchimpSettings

MAX_READ_PAGES = 20
UNCONFIRMED = (
    "journey trigger unconfirmed: the connection was lost after the request was written, "
    "so Mailchimp may or may not have entered {email} into journey {journey} step {step}; "
    "not sent again, to avoid a second entry (check the journey report; `espbridge retry` "
    "sends it again)"
)


def acknowledged(record: Record, learned: Mapping[str, str] | None = None) -> Outcome:
    """An acknowledged outcome."""
    return Outcome(record.key, OutcomeStatus.ACKNOWLEDGED, record, learned_ids=dict(learned or {}))


def rejected(record: Record, reason: str, field: str | None = None) -> Outcome:
    """A rejected outcome (never retried) with Mailchimp's reason."""
    return Outcome(record.key, OutcomeStatus.REJECTED, record, reason=reason, field=field)


def _reject_from(record: Record, error: RejectedPayload) -> Outcome:
    return rejected(record, error.detail, error.pointer)


class Delivery:
    """Sends single records through one client."""

    def __init__(self, settings: MailchimpSettings, client: MailchimpClient) -> None:
        self.settings = settings
        self.client = client

    async def _call(self, request: ApiRequest, *, idempotent: bool = True) -> Any:
        response = await self.client.request(
            request.method,
            request.path,
            json=request.json,
            params=request.params or None,
            idempotent=idempotent,
        )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            # The write was accepted (2xx); only its echo is unreadable (a proxy cut it).
            return None

    async def send(self, record: Record) -> Outcome:
        """Send a tags, member event or journey trigger record."""
        if record.action == tags.NAME:
            return await self.tags(record)
        if record.action == member_event.NAME:
            return await self.member_event(record)
        if record.action == journey_trigger.NAME:
            return await self.journey_trigger(record)
        if record.action == upsert_member.NAME:
            return await self.upsert(record)
        return rejected(record, f"unknown action {record.action!r}", "action")

    async def upsert(self, record: Record) -> Outcome:
        """PUT the member (idempotent), after moving a known member to a new address."""
        s = self.settings
        request = upsert_member.build_request(
            self.audience(record), record.fields, s.status_if_new, s.skip_merge_validation
        )
        try:
            body = await self._rename(record)
            if body is None:
                body = await self._call(request)
        except RejectedPayload as error:
            return _reject_from(record, error)
        learned = {}
        if isinstance(body, Mapping) and body.get("id"):
            learned["mailchimp_subscriber_hash"] = str(body["id"])
        return acknowledged(record, learned)

    async def _rename(self, record: Record) -> Any:
        """PATCH the customer's member under its old address to the new one.

        Returns the updated member, or None when no old member took the address: none
        is left (404: already moved, or never there), or the new address cannot be
        given to it (e.g. it is another member's already) and the PUT decides.
        """
        for old_hash in record.fields.get("previous_hashes") or ():
            request = upsert_member.build_rename_request(
                self.audience(record), old_hash, record.fields, self.settings.skip_merge_validation
            )
            try:
                return await self._call(request) or {}
            except RejectedPayload as error:
                if error.status != 404:
                    return None
        return None

    async def tags(self, record: Record) -> Outcome:
        """Set tags active/inactive (idempotent)."""
        request = tags.build_request(self.audience(record), record.fields, self.settings.is_syncing)
        try:
            await self._call(request)
        except RejectedPayload as error:
            return _reject_from(record, error)
        return acknowledged(record)

    def audience(self, record: Record) -> str:
        """The record's audience (its own `list_id`, else the destination's)."""
        return audience_of(record.fields, self.settings.list_id)

    async def find_event(self, list_id: str, email: str, key: str, names: set[str]) -> set[str]:
        """Which of `names` the member has an event of, carrying `key`."""
        found: set[str] = set()
        for page_number in range(MAX_READ_PAGES):
            request = member_event.build_read_request(
                list_id, email, page_number * member_event.READ_PAGE
            )
            try:
                page = await self._call(request)
            except RejectedPayload as error:
                if error.status == 404:  # no such member: nothing was applied
                    return found
                raise
            if not isinstance(page, Mapping) or not isinstance(page.get("events"), list):
                # An unreadable page is not "no events": that would send a duplicate.
                raise MalformedResponse(f"member events of {email}: unreadable page")
            found |= {name for name, k in member_event.keys_in(page) if k == key and name in names}
            if found == names or len(page.get("events") or []) < member_event.READ_PAGE:
                return found
        return found

    async def post_event_once(
        self, request: ApiRequest, member: tuple[str, str], key: str, name: str, uncertain: bool
    ) -> None:
        """POST an event unless the member already has it; read back after a lost answer.

        Args:
            request: The event POST.
            member: (audience, email) whose events are read back.
            key: The record key, carried in the event's `espbridge_key`.
            name: The event name to look for.
            uncertain: Read back before the first send (the ledger holds it pending).

        Raises:
            RejectedPayload: Mailchimp refused the event.
            TransportFailure: Answers kept being lost (the record stays pending).
        """
        list_id, email = member
        for _ in range(self.settings.retry.uncertain_resends + 1):
            if uncertain and await self.find_event(list_id, email, key, {name}):
                return
            try:
                await self._call(request, idempotent=False)
                return
            except UncertainDelivery:
                uncertain = True
        raise TransportFailure(f"event {key}: answer lost on every attempt", uncertain=True)

    async def member_event(self, record: Record) -> Outcome:
        """POST a member event exactly once."""
        request = member_event.build_request(
            self.audience(record), record.fields, self.settings.is_syncing
        )
        fields = record.fields
        try:
            await self.post_event_once(
                request,
                (self.audience(record), fields["email"]),
                record.key,
                fields["name"],
                record.uncertain,
            )
        except RejectedPayload as error:
            return _reject_from(record, error)
        return acknowledged(record)

    def _unconfirmed(self, record: Record) -> Outcome:
        f = record.fields
        reason = UNCONFIRMED.format(email=f["email"], journey=f["journey_id"], step=f["step_id"])
        return rejected(record, reason, "journey_trigger")

    async def journey_trigger(self, record: Record) -> Outcome:
        """Trigger a journey step, bracketed by intent/sent marker events."""
        f, key = record.fields, record.key
        list_id = self.audience(record)
        intent, sent = journey_trigger.INTENT_MARKER, journey_trigger.SENT_MARKER
        markers: set[str] = set()
        if record.uncertain:
            markers = await self.find_event(list_id, f["email"], key, {intent, sent})
            if sent in markers:
                return acknowledged(record)
            if intent in markers and self.settings.journey_unconfirmed == "reject":
                return self._unconfirmed(record)
        if intent not in markers:
            try:
                marker = journey_trigger.marker_request(list_id, f, key, intent)
                await self.post_event_once(marker, (list_id, f["email"]), key, intent, False)
            except RejectedPayload as error:
                return rejected(record, f"member not reachable for the trigger: {error.detail}")
        for _ in range(self.settings.retry.uncertain_resends + 1):
            try:
                await self._call(journey_trigger.build_request(f), idempotent=False)
                break
            except RejectedPayload as error:
                return _reject_from(record, error)
            except UncertainDelivery:
                if self.settings.journey_unconfirmed == "reject":
                    return self._unconfirmed(record)
        else:
            raise TransportFailure(f"trigger {key}: answer lost on every attempt", uncertain=True)
        marker = journey_trigger.marker_request(list_id, f, key, sent)
        # The trigger itself was accepted; a refused marker only loses the read-back.
        with contextlib.suppress(RejectedPayload):
            await self.post_event_once(marker, (list_id, f["email"]), key, sent, False)
        return acknowledged(record)
