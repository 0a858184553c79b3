"""Secret redaction for everything written to the state store, logs or dry-run output."""

from __future__ import annotations

from typing import Any

SECRET_KEYS = (
    "api_key",
    "apikey",
    "authorization",
    "password",
    "secret",
    "token",
    "write_key",
    "writekey",
)


def is_secret_key(name: str) -> bool:
    """True for keys that name a credential (`api_key`, `access_token`, `Authorization`…)."""
    lowered = name.lower().replace("-", "_")
    return any(part in lowered or part in lowered.replace("_", "") for part in SECRET_KEYS)


def redact(value: Any) -> Any:
    """A copy with every credential-like key's value replaced by `[secure]`."""
    if isinstance(value, dict):
        return {k: "[secure]" if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def display_url(url: str) -> str:
    """A connection URL fit to print: no `user:password@`, secret query values `[secure]`.

    Works on text that does not parse as a URL too (a typo must not reveal a password).
    """
    shown = url.split("@")[-1]
    base, sep, query = shown.partition("?")
    if not sep:
        return shown
    params = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        params.append(f"{name}=[secure]" if eq and is_secret_key(name) else pair)
    return f"{base}?{'&'.join(params)}"
