"""Builds sources, destinations, the identity resolver and the trigger engine from config."""

from __future__ import annotations

import httpx

from connectors.base import Destination, Source
from connectors.klaviyo.settings import KlaviyoSettings
from connectors.mailchimp.settings import MailchimpSettings
from connectors.segment.settings import SegmentSourceSettings
from connectors.warehouse.settings import WarehouseSourceSettings
from sync.config import Config, DestinationSettings, SourceSettings
from sync.identity import IdentityResolver
from sync.ingest.settings import InboxSourceSettings
from sync.store.state import StateStore
from sync.triggers import TriggerEngine


class UnknownConnector(Exception):
    """A config section that no connector in this install can serve."""


def build_source(name: str, settings: SourceSettings, store: StateStore | None = None) -> Source:
    """The source object for a `[sources.<name>]` section."""
    if isinstance(settings, SegmentSourceSettings):
        from connectors.segment.source import SegmentSource

        return SegmentSource(settings, name=name)
    if isinstance(settings, WarehouseSourceSettings):
        from connectors.warehouse.source import WarehouseSource

        return WarehouseSource(settings, name=name)
    if isinstance(settings, InboxSourceSettings):
        from sync.ingest.source import InboxSource

        if store is None:
            raise UnknownConnector(f"sources.{name}: the inbox source needs the state store")
        return InboxSource(name, settings, store)
    raise UnknownConnector(f"sources.{name}: unknown type {settings.type!r}")


def build_destination(
    name: str,
    settings: DestinationSettings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Destination:
    """The destination object for a `[destinations.<name>]` section."""
    if isinstance(settings, KlaviyoSettings):
        from connectors.klaviyo import KlaviyoDestination

        return KlaviyoDestination(name, settings, transport=transport)
    if isinstance(settings, MailchimpSettings):
        from connectors.mailchimp import MailchimpDestination

        return MailchimpDestination(name, settings, transport=transport)
    raise UnknownConnector(f"destinations.{name}: unknown type {settings.type!r}")


def identity_resolver(config: Config, store: StateStore) -> IdentityResolver:
    """The persisted identity resolver for the configured `[identity]` rules."""
    return IdentityResolver(store, config.identity)


def trigger_engine(config: Config, store: StateStore) -> TriggerEngine | None:
    """The trigger engine for the configured `[[triggers]]`, or None when there are none."""
    if not config.triggers:
        return None
    return TriggerEngine(store, config.triggers, config.trigger_engine)
