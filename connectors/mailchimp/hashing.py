"""`SubscriberHash`: how Mailchimp keys a member within an audience."""

from __future__ import annotations

import hashlib
import re
from typing import NewType

SubscriberHash = NewType("SubscriberHash", str)
"""MD5 hex digest of the lower-cased, trimmed email address."""

# Deliberately loose: Mailchimp is the judge of deliverability; this only catches
# values that cannot be an address at all, so they are rejected before sending.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """The address as espbridge sends it: trimmed and lower-cased."""
    return email.strip().lower()


def is_plausible_email(email: str) -> bool:
    """True when `email` looks like `local@domain.tld` (after normalising)."""
    return _EMAIL.match(normalise_email(email)) is not None


def has_utf8_prefix(email: str) -> bool:
    """True when the part before the @ is not ASCII, which Mailchimp refuses.

    Mailchimp's help ("International characters in Mailchimp"): UTF-8 characters are
    blocked in an address's prefix (dirección@domain.com) but allowed in its domain
    (test@ñoñó1234.com).
    """
    return not normalise_email(email).rpartition("@")[0].isascii()


def subscriber_hash(email: str) -> SubscriberHash:
    """The member id of `email`: md5 of the lower-cased, trimmed address.

    Args:
        email: An email address, any case, possibly padded with spaces.

    Returns:
        32 lower-case hex characters.
    """
    digest = hashlib.md5(normalise_email(email).encode("utf-8"), usedforsecurity=False)
    return SubscriberHash(digest.hexdigest())
