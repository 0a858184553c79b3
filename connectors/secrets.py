"""Which names hold a credential: one list for config options and for redaction.

`sync.redact` masks the values of such keys in payloads, URLs and messages; a source's
free-form options (`storage_options`) keep theirs as `SecretStr`.
"""

from __future__ import annotations

SECRET_KEYS = (
    "account_key",
    "api_key",
    "authorization",
    "connection_string",
    "credential",
    "password",
    "private_key",
    "secret",
    "token",
    "write_key",
)

_SQUASHED = tuple(key.replace("_", "") for key in SECRET_KEYS)


def is_secret_key(name: str) -> bool:
    """True for names of a credential, however spelt: `api_key`, `apiKey`, `API-KEY`,
    `aws_session_token`, `Authorization`, `client_secret`, `sslpassword`."""
    squashed = name.lower().replace("_", "").replace("-", "")
    return any(part in squashed for part in _SQUASHED)
