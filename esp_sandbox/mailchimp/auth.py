"""Mailchimp authentication: HTTP Basic with the API key as password, or OAuth Bearer.

The API key is `<32 hex>-<dc>`; its data-center suffix must be this sandbox's
data center. The official SDK sends `auth=('user', api_key)`; any username works.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from esp_sandbox.context import SandboxConfig
from esp_sandbox.mailchimp.errors import MailchimpError

_KEY = re.compile(r"^[0-9a-f]{32}-(?P<dc>[a-z]+[0-9]+)$")


def _missing() -> MailchimpError:
    return MailchimpError(401, "API Key Missing", "Your request did not include an API key.")


def _invalid() -> MailchimpError:
    return MailchimpError(
        401,
        "API Key Invalid",
        "Your API key may be invalid, or you've attempted to access the wrong data center.",
    )


def authenticate(authorization: str | None, config: SandboxConfig) -> str:
    """Check an `Authorization` header and name the principal it authenticates.

    Args:
        authorization: The raw header value, or None.
        config: Sandbox configuration (accepted keys, data center, OAuth tokens).

    Returns:
        An opaque principal id (a digest, never the key itself) used to count
        simultaneous connections per key.

    Raises:
        MailchimpError: 401 when the credential is missing or not accepted; 403
            when a well-formed key belongs to another data center.
    """
    if not authorization:
        raise _missing()
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return _oauth(value.strip(), config)
    if scheme != "basic":
        raise _missing()
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    _, sep, key = decoded.partition(":")
    if not sep or not key:
        raise _missing()
    return _api_key(key, config)


def _api_key(key: str, config: SandboxConfig) -> str:
    match = _KEY.match(key)
    if match is None:
        raise _invalid()
    if match["dc"] != config.mailchimp_dc:
        # Live Mailchimp answers a key from another data center with 403 Forbidden
        # (rudder-transformer's recorded mock for GET members, see peer vectors).
        raise MailchimpError(
            403, "Forbidden", f"The API key provided is linked to datacenter '{match['dc']}'"
        )
    if config.mailchimp_api_keys is not None and key not in config.mailchimp_api_keys:
        raise _invalid()
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _oauth(token: str, config: SandboxConfig) -> str:
    accepted: set[str] | None = getattr(config, "mailchimp_oauth_tokens", None)
    if not token:
        raise _missing()
    if accepted is None or token not in accepted:
        raise _invalid()
    return "oauth:" + hashlib.sha256(token.encode()).hexdigest()[:16]
