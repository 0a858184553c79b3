"""Which identifier an ESP keys a customer on (`[identity.esp_keys]`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mapping.identity.settings import IdentitySettings


def esp_key(
    settings: IdentitySettings, esp: str, identifiers: Mapping[str, Sequence[str]]
) -> tuple[str, str] | None:
    """The (kind, value) an ESP keys this customer on, first configured kind present wins.

    Args:
        settings: The identity rules.
        esp: `klaviyo`, `mailchimp` or another configured ESP name.
        identifiers: The customer's identifiers (`Customer.identifiers`).

    Returns:
        None when the customer has none of the kinds the ESP keys on.
    """
    for kind in settings.esp_keys.get(esp, ()):
        values = identifiers.get(kind)
        if values:
            return kind, values[0]
    return None
