"""Builds sources and destinations from their config sections."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import Destination, Source
from sync.config import Config, DestinationSettings, SourceSettings
from sync.store.state import StateStore


class UnknownConnector(Exception):
    """A config `type` with no connector behind it in this install."""


def build_source(name: str, settings: SourceSettings, store: StateStore | None = None) -> Source:
    """The source object for a `[sources.<name>]` section."""
    kind = settings.type
    if kind == "segment":
        from connectors.segment.source import SegmentSource

        return SegmentSource(settings, name=name)
    if kind == "warehouse":
        from connectors.warehouse.source import WarehouseSource

        return WarehouseSource(settings, name=name)
    if kind == "inbox":
        from sync.ingest.source import InboxSource

        if store is None:
            raise UnknownConnector(f"sources.{name}: the inbox source needs the state store")
        return InboxSource(name, settings, store)
    raise UnknownConnector(f"sources.{name}: unknown type {kind!r}")


def build_destination(
    name: str,
    settings: DestinationSettings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Destination:
    """The destination object for a `[destinations.<name>]` section."""
    kind = settings.type
    destination: Any
    if kind == "klaviyo":
        from connectors.klaviyo import KlaviyoDestination

        destination = KlaviyoDestination(name, settings, transport=transport)
    elif kind == "mailchimp":
        from connectors.mailchimp import MailchimpDestination

        destination = MailchimpDestination(name, settings, transport=transport)
    else:
        raise UnknownConnector(f"destinations.{name}: unknown type {kind!r}")
    assert isinstance(destination, Destination)
    return destination


def identity_resolver(config: Config, store: StateStore) -> Any:
    """The persisted identity resolver, or None when identity is not installed."""
    try:
        from sync.identity import IdentityResolver
    except ImportError:
        return None
    return IdentityResolver(store, config.identity)


def trigger_engine(config: Config, store: StateStore) -> Any:
    """The trigger engine for the configured `[[triggers]]`, or None when there are none."""
    if not config.triggers:
        return None
    from sync.triggers import TriggerEngine

    return TriggerEngine(store, config.triggers)
