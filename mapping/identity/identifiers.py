"""Typed identifiers and how they are read from a message.

An identifier is `(kind, value)`: `("email", "ann@example.com")`. Values are
normalized (emails trimmed and lower-cased, phones in E.164) and junk values
(`null`, `undefined`, `test@test.com`, …) are never identifiers, so they can never
merge two people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapping.identity.settings import IdentitySettings
from mapping.paths import get_path
from mapping.transforms import TransformError, e164
from mapping.types import Message
from mapping.validate import is_email

Identifier = tuple[str, str]
"""(kind, normalized value)."""

MAX_VALUE_LENGTH = 500

_MEMO_LIMIT = 50_000  # (kind, text) → normalized value; emptied when it grows past this
_MISS = object()


@dataclass(frozen=True, slots=True)
class Normalizer:
    """Normalizes identifier values under one `IdentitySettings`."""

    settings: IdentitySettings
    junk: frozenset[str]
    plan: tuple[tuple[str, str, str, bool], ...] = ()
    memo: dict[tuple[str, str], str | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    """Results for text values: the same ids recur in every batch."""

    @classmethod
    def of(cls, settings: IdentitySettings) -> Normalizer:
        """A normalizer for these settings."""
        return cls(settings, settings.junk(), _plan(settings))

    def normalize(self, kind: str, raw: Any) -> str | None:
        """The normalized value, or None when it is junk or not a valid identifier."""
        if type(raw) is not str:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                return None
            if not isinstance(raw, str):
                raw = str(int(raw)) if float(raw).is_integer() else str(raw)
        value: str = raw.strip()
        if value.lower() in self.junk or len(value) > MAX_VALUE_LENGTH:
            return None
        if kind == "email":
            value = value.lower()
            return value if is_email(value) else None
        if kind == "phone":
            try:
                value = e164(value, self.settings.phone_default_region)
            except TransformError:
                return None
            return None if value in self.junk else value
        if kind == "mailchimp_subscriber_hash":
            return value.lower()
        return value


def _plan(settings: IdentitySettings) -> tuple[tuple[str, str, str, bool], ...]:
    """(kind, where, path, one key?) for every configured identifier path, split once."""
    plan: list[tuple[str, str, str, bool]] = []
    pairs = [("email", p) for p in settings.email_paths]
    pairs += [("phone", p) for p in settings.phone_paths]
    pairs += [(kind, p) for kind, paths in settings.keys.items() for p in paths]
    for kind, path in pairs:
        where, _, rest = path.partition(".")
        if where not in ("traits", "properties") or not rest:
            where, rest = "raw", path
        plan.append((kind, where, rest, "." not in rest and "[" not in rest))
    return tuple(plan)


def _lookup(message: Message, where: str, path: str, one_key: bool) -> Any:
    if where == "traits":
        source: Mapping[str, Any] = message.traits
    elif where == "properties":
        source = message.properties
    else:
        source = message.raw
    if not source:
        return None
    return source.get(path) if one_key else get_path(source, path)


def extract(message: Message, norm: Normalizer) -> list[Identifier]:
    """Every identifier a message carries, normalized and de-duplicated.

    userId and anonymousId of the same message, an alias call's previousId, and the
    configured email, phone and extra-key paths are all edges between each other.
    """
    raws: list[tuple[str, Any]] = [
        ("user_id", message.user_id),
        ("anonymous_id", message.anonymous_id),
    ]
    if message.type == "alias":
        raws.append((norm.settings.alias_previous_id, message.raw.get("previousId")))
    for kind, where, path, one_key in norm.plan:
        value = _lookup(message, where, path, one_key)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            raws += [(kind, item) for item in value]
        else:
            raws.append((kind, value))
    found: dict[Identifier, None] = {}
    normalize, memo = norm.normalize, norm.memo
    for pair in raws:
        raw = pair[1]
        if raw is None:
            continue
        if type(raw) is str:  # only text: 1, 1.0 and True are equal keys
            value = memo.get(pair, _MISS)
            if value is _MISS:
                value = normalize(pair[0], raw)
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[pair] = value
        else:
            value = normalize(pair[0], raw)
        if value is not None:
            found[(pair[0], value)] = None
    return list(found)


def traits_of(message: Message) -> Mapping[str, Any]:
    """The traits a message tells about its customer (identify traits or context.traits)."""
    return message.traits
