"""Identity resolution, pure: identifiers, the merge graph and its rules.

Persistence lives in `sync.identity` (the resolver) and `sync.store.identity` (tables).
"""

from mapping.identity.graph import Component, Conflict, IdentityGraph, Seen, customer_id_for
from mapping.identity.identifiers import Identifier, Normalizer, extract
from mapping.identity.keys import esp_key
from mapping.identity.settings import IdentitySettings, ProfilesApiSettings

__all__ = [
    "Component",
    "Conflict",
    "Identifier",
    "IdentityGraph",
    "IdentitySettings",
    "Normalizer",
    "ProfilesApiSettings",
    "Seen",
    "customer_id_for",
    "esp_key",
    "extract",
]
