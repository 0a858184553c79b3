"""Who may write: Segment write keys (Basic auth or `writeKey`) and webhook signatures."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr


def basic_write_key(header: str | None) -> str | None:
    """The write key of a Basic `Authorization` header, else None.

    Segment's is the username (empty password); a header with an empty username and the
    key as the password (`-u :KEY`, some hand-written clients) is read the same way.
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, _, password = decoded.partition(":")
    return username or password or None


def is_write_key(candidate: str | None, keys: Sequence[SecretStr]) -> bool:
    """True when `candidate` is one of the configured write keys (constant-time compare)."""
    if not candidate:
        return False
    given = candidate.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.get_secret_value().encode("utf-8"))
    return found


def signature(secret: SecretStr, payload: bytes) -> str:
    """Segment's `X-Signature`: hex HMAC-SHA1 of the payload with the shared secret."""
    key = secret.get_secret_value().encode("utf-8")
    return hmac.new(key, payload, hashlib.sha1).hexdigest()


def js_stringify(value: Any) -> bytes:
    """Close to JavaScript's `JSON.stringify` (compact, non-ASCII kept) for plain JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_signed(
    secret: SecretStr,
    header: str | None,
    raw: bytes,
    body: Any,
    *,
    first_event_ok: bool,
) -> bool:
    """Check `X-Signature` over the raw body (or, if allowed, over a batch's first event).

    Segment signs a batched webhook over `JSON.stringify(body[0])` only; accepting that
    leaves the other events of the batch unsigned, so it is opt-in.
    """
    if not header:
        return False
    given = header.strip().lower().encode("ascii", "replace")
    if hmac.compare_digest(given, signature(secret, raw).encode("ascii")):
        return True
    if first_event_ok and isinstance(body, list) and body:
        expected = signature(secret, js_stringify(body[0])).encode("ascii")
        return hmac.compare_digest(given, expected)
    return False
