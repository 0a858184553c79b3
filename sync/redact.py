"""Secret redaction for everything written to the state store, logs or dry-run output."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from connectors.secrets import is_secret_key

MIN_MASKED = 6
"""Shorter secret values are not masked: replacing "1" or "us" would garble the text."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# `name=value` outside a URL: libpq connection strings, driver messages, query fragments.
_PAIR = re.compile(
    r"(?P<name>[A-Za-z_][\w.-]*)=(?!\[secure\])(?P<value>'[^']*'|\"[^\"]*\"|[^\s&'\",;)\]]+)"
)


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


def url_secrets(url: str) -> set[str]:
    """The password and secret query values written in a connection URL (to mask elsewhere)."""
    found: set[str] = set()
    match = _URL.search(url)
    if match is None:
        return found
    text = match.group(0)
    userinfo = text.partition("://")[2].rpartition("@")[0]
    if ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for pair in text.partition("?")[2].split("&"):
        name, eq, value = pair.partition("=")
        if eq and is_secret_key(name):
            found.add(value)
    return {v for value in found for v in (value, unquote(value)) if len(v) >= MIN_MASKED}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """An error or log message fit for a terminal or the state store.

    Every configured secret in `secrets` (values of at least `MIN_MASKED` characters)
    becomes `[secure]`, every URL is shown as `display_url` shows it (no `user:password@`,
    secret query values `[secure]`), and `name=value` pairs whose name is a credential
    (`password=…` in a libpq connection string) have their value `[secure]`.

    >>> redact_text("fatal: postgresql://u:pw@db:5432/dw?sslpassword=x failed", ["pk_live_123"])
    'fatal: db:5432/dw?sslpassword=[secure] failed'
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_MASKED}, key=len, reverse=True):
        text = text.replace(secret, "[secure]")
    text = _URL.sub(lambda match: display_url(match.group(0)), text)
    return _PAIR.sub(
        lambda m: f"{m['name']}=[secure]" if is_secret_key(m["name"]) else m.group(0), text
    )
