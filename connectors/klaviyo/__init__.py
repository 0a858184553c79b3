"""Klaviyo destination (issue #4): track events, Placed Order fan-out, profiles, consent, lists."""

from __future__ import annotations

from connectors.klaviyo.destination import KlaviyoDestination
from connectors.klaviyo.settings import KlaviyoSettings

__all__ = ["KlaviyoDestination", "KlaviyoSettings"]
