"""Mailchimp actions: one module per action, each declaring its fields as data.

Every action module exposes `NAME`, `TITLE`, `FIELDS` (default `FieldSpec`s,
overridable under `[destinations.<name>.mapping.<action>]`), `DESCRIPTIONS` (one per
field), `subscribes(message, settings)` (which messages it takes), its batch limits,
and pure request builders returning `ApiRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mapping.fields import FieldSpec

EMAIL_PATHS = ["traits.email", "context.traits.email", "properties.email", "customer.email"]
LIST_PATHS = ["integrations.Mailchimp.listId", "integrations.MailChimp.listId"]


def email_field() -> FieldSpec:
    """The member's address: message traits first, then identity resolution's."""
    return FieldSpec(path=list(EMAIL_PATHS), required=True)


def list_field() -> FieldSpec:
    """A per-message audience (Segment's `integrations.Mailchimp.listId`); else `list_id`."""
    return FieldSpec(path=list(LIST_PATHS))


def audience_of(fields: Mapping[str, Any], default: str) -> str:
    """The audience a record goes to: its own `list_id`, else the destination's."""
    return str(fields.get("list_id") or default)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One Mailchimp call, as data (method, path below /3.0, query, JSON body)."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How many records one request of an action carries."""

    default: int
    maximum: int


def mailchimp_time(moment: datetime) -> str:
    """UTC, seconds precision, `+00:00` offset: `2019-11-15T10:26:53+00:00`."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def merged_fields(
    defaults: Mapping[str, FieldSpec], overrides: Mapping[str, FieldSpec] | None
) -> dict[str, FieldSpec]:
    """The action's default field specs with the user's overrides applied.

    Raises:
        ValueError: An override names a field the action does not have.
    """
    out = dict(defaults)
    for name, spec in (overrides or {}).items():
        if name not in defaults:
            raise ValueError(f"unknown field {name!r}; expected one of {sorted(defaults)}")
        out[name] = spec
    return out
