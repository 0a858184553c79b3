"""Typed identifiers and how they are read from a message.

An identifier is `(kind, value)`: `("email", "ann@example.com")`. Values are
normalized (emails trimmed and lower-cased, phones in E.164) and junk values
(`null`, `undefined`, `test@test.com`, …) are never identifiers, so they can never
merge two people (the rules for messy values: `mapping.identity.values`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapping.identity.aliases import FORMER_USER_ID, USER_ID
from mapping.identity.settings import JUNK_VALUES, IdentitySettings
from mapping.identity.values import (
    BLANK,
    MAX_VALUE_LENGTH,
    WRAPPERS,
    as_text,
    email_text,
    integral,
    junk_key,
    meaningless,
    storable,
)
from mapping.paths import get_path
from mapping.transforms import TransformError
from mapping.transforms.phones import e164
from mapping.types import Message
from mapping.validate import is_email

Identifier = tuple[str, str]
"""(kind, normalized value)."""

_MEMO_LIMIT = 200_000  # text values per kind; a kind's memo is emptied past this
_MISS: Any = object()


@dataclass(frozen=True, slots=True)
class Normalizer:
    """Normalizes identifier values under one `IdentitySettings`."""

    settings: IdentitySettings
    junk: frozenset[str]
    """Every junk value as `junk_key` gives it (lower-cased, wrappers off)."""
    plan: tuple[tuple[str, str, str, bool], ...] = ()
    rank: dict[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)
    """Kind → priority (`IdentitySettings.ranking`), for ordering a message's identifiers."""
    by_source: tuple[tuple[tuple[str, str, bool], ...], ...] = ((), (), ())
    """`plan` as (kind, path, one key?) for traits, properties and the raw message."""
    junk_phones: frozenset[str] = frozenset()
    """Junk values that are phone numbers, in E.164: ignoring `(212) 555-1212` ignores
    `+1 212-555-1212` too."""
    junk_locals: frozenset[str] = frozenset()
    """The built-in junk values: an address with one before the @ is junk
    (`null@null.com`, `undefined@shop.com`)."""
    memo: dict[str, dict[str, Identifier | None]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    """kind → text value → its identifier (or None for junk): the same ids recur in every
    batch, and handing back the same tuple saves building and normalizing it again."""
    pairs: dict[tuple[str | None, str | None], tuple[Identifier, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    """(userId, anonymousId) → their identifiers, ranked: what most messages carry, and
    one shared tuple for all of them (nothing new for the garbage collector to track)."""

    @classmethod
    def of(cls, settings: IdentitySettings) -> Normalizer:
        """A normalizer for these settings."""
        plan = _plan(settings)
        by_source = tuple(
            tuple((kind, path, one_key) for kind, where, path, one_key in plan if where == source)
            for source in ("traits", "properties", "raw")
        )
        junk = frozenset(junk_key(value) for value in settings.junk())
        return cls(
            settings,
            junk,
            plan,
            settings.ranking(),
            by_source,
            junk_phones=_junk_phones(settings),
            junk_locals=frozenset(junk_key(value) for value in JUNK_VALUES),
        )

    def normalize(self, kind: str, raw: Any) -> str | None:
        """The normalized value, or None when it is junk or not a valid identifier.

        Only ever called once per distinct text (see `identifier`): the rules of
        `mapping.identity.values` cost nothing per message.
        """
        text = raw if type(raw) is str else as_text(raw)
        if text is None:
            return None
        value = text.strip(BLANK)
        if kind == "email":
            return None if self.is_junk(value) else self._email(value)
        if kind == "phone":
            return None if self.is_junk(value) else self._phone(value)
        value = integral(value)  # before the junk check: `-1.0` is `-1`
        if self.is_junk(value):
            return None
        return value.lower() if kind == "mailchimp_subscriber_hash" else value

    def is_junk(self, value: str) -> bool:
        """True when trimmed text can name nobody, or cannot be stored."""
        return (
            len(value) > MAX_VALUE_LENGTH
            or value.lower().strip(WRAPPERS) in self.junk  # `junk_key` of trimmed text
            or meaningless(value)
            or not storable(value)
        )

    def _email(self, value: str) -> str | None:
        address = email_text(value)
        if address is None or not is_email(address):
            return None
        # `null@null.com`, `undefined@shop.com`: a placeholder before the @ is
        # still a placeholder, whatever the domain (a template filled with nothing).
        local = address.partition("@")[0]
        if address in self.junk or local in self.junk_locals or meaningless(local):
            return None
        return address

    def _phone(self, value: str) -> str | None:
        try:
            number = e164(value, self.settings.phone_default_region)
        except TransformError:
            return None
        return None if number in self.junk_phones else number

    def identifier(self, kind: str, raw: Any) -> Identifier | None:
        """`(kind, normalized value)`, or None; memoized for text values."""
        if type(raw) is not str:  # only text: 1, 1.0 and True are equal keys
            value = self.normalize(kind, raw)
            return None if value is None else (kind, value)
        memo = self.memo.get(kind)
        if memo is None:
            memo = self.memo[kind] = {}
        found = memo.get(raw, _MISS)
        if found is _MISS:
            value = self.normalize(kind, raw)
            found = None if value is None else (kind, value)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[raw] = found
        return found  # type: ignore[no-any-return]

    def pair(self, user_id: str | None, anonymous_id: str | None) -> tuple[Identifier, ...]:
        """The ranked identifiers of a userId and an anonymousId (memoized)."""
        pairs = self.pairs
        key = (user_id, anonymous_id)
        found = pairs.get(key)
        if found is None:
            idents: list[Identifier] = []
            if user_id is not None:
                _add(idents, self.identifier("user_id", user_id))
            if anonymous_id is not None:
                _add(idents, self.identifier("anonymous_id", anonymous_id))
            found = tuple(self.ranked(idents))
            if len(pairs) >= _MEMO_LIMIT:
                pairs.clear()
            pairs[key] = found
        return found

    def ranked(self, found: list[Identifier]) -> list[Identifier]:
        """Identifiers in merge order: by kind priority, then value (`found` is unique)."""
        if len(found) < 2:
            return found
        rank = self.rank
        last = len(rank)
        if len(found) == 2:
            a, b = found
            ra, rb = rank.get(a[0], last), rank.get(b[0], last)
            if ra > rb or (ra == rb and a[1] > b[1]):
                found.reverse()
            return found
        found.sort(key=lambda i: (rank.get(i[0], last), i[1]))
        return found


def _junk_phones(settings: IdentitySettings) -> frozenset[str]:
    """The E.164 form of every junk value that is a phone number."""
    found: set[str] = set()
    for value in settings.junk():
        try:
            found.add(e164(value, settings.phone_default_region))
        except TransformError:
            continue
    return frozenset(found)


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


def extract(message: Message, norm: Normalizer) -> tuple[Identifier, ...]:
    """Every identifier a message carries, normalized, de-duplicated and ranked.

    userId and anonymousId of the same message, an alias call's previousId, and the
    configured email, phone and extra-key paths are all edges between each other. An
    alias's previous user id, renamed to its userId, is a `former_user_id`.
    The identifiers are in merge order (`Normalizer.ranked`): kind priority, then value.
    """
    key = (message.user_id, message.anonymous_id)
    found = norm.pairs.get(key)
    if found is None:
        found = norm.pair(*key)
    more: list[Identifier] | None = None  # only when the message carries other ids
    if message.type == "alias":
        raw = message.raw.get("previousId")
        if raw is not None:
            ident = norm.identifier(norm.settings.alias_previous_id, raw)
            if ident is not None and ident[0] == USER_ID and _renames(found, ident):
                ident = (FORMER_USER_ID, ident[1])  # see `mapping.identity.aliases`
            more = _more(found, more, ident)
    # Most messages have no traits and no identifier properties: a source is skipped
    # at once when empty, and read only where a configured path is.
    in_traits, in_properties, in_raw = norm.by_source
    if in_traits and (source := message.traits):
        more = _scan(source, in_traits, found, more, norm)
    if in_properties and (source := message.properties):
        more = _scan(source, in_properties, found, more, norm)
    if in_raw and (source := message.raw):
        more = _scan(source, in_raw, found, more, norm)
    return found if more is None else tuple(norm.ranked(more))


def _renames(found: tuple[Identifier, ...], previous: Identifier) -> bool:
    """True when an alias's previous user id is not its (usable) userId: a rename."""
    return any(kind == USER_ID and value != previous[1] for kind, value in found)


def _scan(
    source: Mapping[str, Any],
    paths: tuple[tuple[str, str, bool], ...],
    found: tuple[Identifier, ...],
    more: list[Identifier] | None,
    norm: Normalizer,
) -> list[Identifier] | None:
    """`_more` with the identifiers at `paths` of one source."""
    for kind, path, one_key in paths:
        raw = source.get(path) if one_key else get_path(source, path)
        if raw is None:
            continue
        if isinstance(raw, list | tuple):
            for item in raw:
                if item is not None:
                    more = _more(found, more, norm.identifier(kind, item))
        else:
            more = _more(found, more, norm.identifier(kind, raw))
    return more


def _more(
    found: tuple[Identifier, ...], more: list[Identifier] | None, ident: Identifier | None
) -> list[Identifier] | None:
    """`more` (a copy of `found` once needed) with `ident` added when it is new."""
    if ident is None or ident in found:
        return more
    if more is None:
        more = list(found)
    if ident not in more:
        more.append(ident)
    return more


def _add(found: list[Identifier], ident: Identifier | None) -> None:
    if ident is not None and ident not in found:
        found.append(ident)


def traits_of(message: Message) -> Mapping[str, Any]:
    """The traits a message tells about its customer (identify traits or context.traits)."""
    return message.traits
