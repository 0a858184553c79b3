"""`MailchimpDestination`: maps Segment messages to Mailchimp records and sends them.

Actions (one module each under `actions/`): `upsert_member` and `tags` take identify
calls; `member_event` takes track calls; `journey_trigger` takes the track calls named
in `[destinations.<name>.journeys]`. Mailchimp events have no idempotency key, so the
destination declares `intent_log = True` (see `delivery.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from connectors.base import Customer, Outcome, Record, Suppressed
from connectors.errors import RejectedPayload
from connectors.mailchimp.actions import (
    journey_trigger,
    mailchimp_time,
    member_event,
    merged_fields,
    tags,
    upsert_member,
)
from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.hashing import (
    has_utf8_prefix,
    is_plausible_email,
    normalise_email,
    subscriber_hash,
)
from connectors.mailchimp.merge_fields import MergeFieldError, convert
from connectors.mailchimp.settings import MailchimpSettings, is_audience_id
from connectors.mailchimp.sink import MailchimpSink
from mapping.fields import FieldSpec, Resolved, resolve
from mapping.message import MessageError, parse_timestamp
from mapping.types import Message, RejectedRow

ACTIONS = {m.NAME: m for m in (upsert_member, tags, member_event, journey_trigger)}
KNOWN_HASHES = "mailchimp_subscriber_hash"
"""The identifier kind of a member id espbridge learned from Mailchimp."""
Built = tuple[dict[str, Any], tuple[str, ...]]
"""A record's fields, and the fields beyond the action's own that a fallback filled
(upsert_member's `merge_fields.<TAG>`)."""
Builder = Callable[[Message, Resolved, Mapping[str, Any]], Built | None]
"""Turns a message's resolved action fields into a record's fields (None: no record)."""


class MappingReject(ValueError):
    """A message that cannot become a record; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def message_data(message: Message, customer: Customer | None) -> dict[str, Any]:
    """The dict field paths resolve against: the raw message, normalised, plus `customer`."""
    data: dict[str, Any] = dict(message.raw)
    data.update(
        type=message.type,
        event=message.event,
        traits=dict(message.traits),
        properties=dict(message.properties),
        timestamp=message.timestamp,
        messageId=message.message_id,
    )
    if customer is not None:
        data["customer"] = {
            "email": customer.first("email"),
            "id": customer.customer_id,
            "traits": dict(customer.traits),
            # The members espbridge wrote for this person (their PUT answers' ids).
            KNOWN_HASHES: list(customer.identifiers.get(KNOWN_HASHES) or ()),
        }
    return data


def previous_hashes(data: Mapping[str, Any], email: str) -> list[str]:
    """The customer's known members under other addresses: an email change to apply.

    Only members espbridge itself wrote (their ids were learned from its PUTs) are
    candidates, and none when the new address's member is known already: then the
    change was applied before, and a late message must not move the member back.
    """
    customer = data.get("customer")
    known = customer.get(KNOWN_HASHES) if isinstance(customer, Mapping) else None
    hashes = [str(h).lower() for h in known or ()]
    if subscriber_hash(email) in hashes:
        return []
    return list(dict.fromkeys(hashes))


class MailchimpDestination:
    """A Mailchimp audience as an espbridge destination.

    Args:
        name: The `[destinations.<name>]` key.
        settings: Its settings.
        transport: An httpx transport (tests: MockTransport or the sandbox).
    """

    intent_log = True

    def __init__(
        self,
        name: str,
        settings: MailchimpSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = MailchimpClient(settings, transport)
        self.sink = MailchimpSink(settings, self.client)
        self.fields: dict[str, dict[str, FieldSpec]] = {}
        for action in settings.actions:
            try:
                self.fields[action] = merged_fields(
                    ACTIONS[action].FIELDS, settings.mapping.get(action)
                )
            except ValueError as exc:
                raise ValueError(f"destinations.{name}.mapping.{action}: {exc}") from None
        self._builders: dict[str, Builder] = {
            upsert_member.NAME: self._upsert_fields,
            tags.NAME: self._tag_fields,
            member_event.NAME: self._event_fields,
            journey_trigger.NAME: self._trigger_fields,
        }

    def map(
        self, message: Message, customer: Customer | None
    ) -> list[Record | RejectedRow | Suppressed]:
        """Records for every action subscribed to `message` (or rejects, suppressions).

        A message about someone with no known email is suppressed, not rejected: every
        Mailchimp call is keyed by the member's address, and an anonymous visitor's
        event is not a fault to fix (it would flood the ledger and `reject_threshold`).
        """
        data = message_data(message, customer)
        out: list[Record | RejectedRow | Suppressed] = []
        for action, specs in self.fields.items():
            if not ACTIONS[action].subscribes(message, self.settings):
                continue
            key = f"{message.message_id}:{action}"
            try:
                resolved = resolve(specs, data)
                if "email" in resolved.missing:
                    out.append(Suppressed(key, "no_email"))
                    continue
                if resolved.missing:
                    field = resolved.missing[0]
                    paths = ", ".join(specs[field].path) or "(constant)"
                    raise MappingReject(field, f"required, but blank at {paths}")
                built = self._builders[action](message, resolved, data)
            except (MappingReject, MergeFieldError) as exc:
                field = exc.field if isinstance(exc, MappingReject) else f"merge_fields.{exc.tag}"
                out.append(self._reject(message, key, field, exc.reason))
                continue
            except ValueError as exc:
                out.append(self._reject(message, key, action, str(exc)))
                continue
            if built is not None:
                fields, more_fallbacks = built
                if resolved.values.get("list_id"):
                    audience = str(resolved.values["list_id"]).strip()
                    if not is_audience_id(audience):
                        reason = f"not a Mailchimp audience id: {audience[:80]!r}"
                        out.append(self._reject(message, key, "list_id", reason))
                        continue
                    fields["list_id"] = audience
                fallbacks = (*resolved.fallbacks_used, *more_fallbacks)
                out.append(
                    Record(
                        key,
                        action,
                        fields,
                        message.source_ref,
                        message.timestamp,
                        fallbacks=fallbacks,
                    )
                )
        return out

    def _reject(self, message: Message, key: str, field: str, reason: str) -> RejectedRow:
        return RejectedRow(
            source_ref=message.source_ref,
            field=field,
            reason=reason,
            stage="mapping",
            payload={"messageId": message.message_id, "type": message.type},
            destination=self.name,
            key=key,
        )

    @staticmethod
    def _email(resolved: Resolved) -> str:
        raw = resolved.values.get("email")
        if not isinstance(raw, str) or not is_plausible_email(raw):
            raise MappingReject("email", f"not a valid email address: {str(raw)[:80]!r}")
        if has_utf8_prefix(raw):
            raise MappingReject(
                "email",
                f"Mailchimp accepts no characters outside ASCII before the @: {raw[:80]!r}",
            )
        return normalise_email(raw)

    def _upsert_fields(
        self, message: Message, resolved: Resolved, data: Mapping[str, Any]
    ) -> Built:
        fields: dict[str, Any] = {"email": self._email(resolved)}
        moved_from = previous_hashes(data, fields["email"])
        if moved_from:
            fields["previous_hashes"] = moved_from
        merge = resolve(self.settings.merge_fields, data)
        if merge.missing:
            tag = merge.missing[0]
            raise MappingReject(f"merge_fields.{tag}", "required merge field is blank")
        converted = {
            tag: convert(tag, self.settings.merge_fields[tag], value)
            for tag, value in merge.values.items()
        }
        fields["merge_fields"] = {tag: v for tag, v in converted.items() if v is not None}
        if resolved.values.get("language"):
            fields["language"] = str(resolved.values["language"])
        return fields, tuple(f"merge_fields.{tag}" for tag in merge.fallbacks_used)

    def _tag_fields(
        self, message: Message, resolved: Resolved, data: Mapping[str, Any]
    ) -> Built | None:
        add = [*self.settings.static_tags, *tags.tag_names(resolved.values.get("add"))]
        changes = tags.tag_changes(add, tags.tag_names(resolved.values.get("remove")))
        if not changes:
            return None
        return {"email": self._email(resolved), "tags": changes}, ()

    def _event_fields(self, message: Message, resolved: Resolved, data: Mapping[str, Any]) -> Built:
        key = f"{message.message_id}:{member_event.NAME}"
        try:
            name = member_event.normalise_name(str(resolved.values["name"]))
        except ValueError as exc:
            raise MappingReject("name", str(exc)) from None
        properties = resolved.values.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise MappingReject("properties", "must be an object")
        try:
            occurred_at = mailchimp_time(parse_timestamp(resolved.values["occurred_at"]))
        except MessageError as exc:
            raise MappingReject("occurred_at", exc.reason) from None
        fields = {
            "email": self._email(resolved),
            "name": name,
            "properties": member_event.string_properties(properties, key),
            "occurred_at": occurred_at,
        }
        return fields, ()

    def _trigger_fields(
        self, message: Message, resolved: Resolved, data: Mapping[str, Any]
    ) -> Built:
        step = self.settings.journeys[str(message.event)]
        fields = {
            "email": self._email(resolved),
            "journey_id": step.journey_id,
            "step_id": step.step_id,
            "event": message.event,
            "occurred_at": mailchimp_time(message.timestamp),
        }
        return fields, ()

    async def process_record(self, record: Record) -> None:
        """Queue one record (the sink may send a full batch before returning)."""
        await self.sink.process_record(record)

    async def drain(self) -> list[Outcome]:
        """Send everything queued and return every outcome since the last drain."""
        return await self.sink.drain()

    async def check(self) -> str:
        """`GET /ping` with the configured credential; then confirm the audience."""
        ping = await self.client.request("GET", "/ping")
        health = ping.json().get("health_status", "ok")
        try:
            audience = (
                await self.client.request(
                    "GET", f"/lists/{self.settings.list_id}", params={"fields": "id,name"}
                )
            ).json()
        except RejectedPayload as error:
            raise RejectedPayload(
                error.status, f"audience {self.settings.list_id}: {error.detail}"
            ) from None
        dc = self.settings.data_center
        return f"Mailchimp {dc}: {health}; audience {audience.get('name', '?')!r}"

    async def aclose(self) -> None:
        """Close connections."""
        await self.client.aclose()
