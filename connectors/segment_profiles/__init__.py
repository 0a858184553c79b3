"""Segment Profiles API (Unify) client: external ids and traits of a profile."""

from connectors.segment_profiles.client import ExternalId, ProfilesClient
from connectors.segment_profiles.enrich import lookup_identifiers, unresolved

__all__ = ["ExternalId", "ProfilesClient", "lookup_identifiers", "unresolved"]
