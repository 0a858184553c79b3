"""Which triggers an event starts or cancels, and the keys it carries.

Compiled once per engine: an index from event name to the triggers that care, so an
event no trigger mentions costs one dict lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mapping.fields import is_blank
from mapping.paths import get_path
from mapping.types import Message
from sync.triggers.settings import EventMatch, TriggerSettings

ANY_KEY = "*"
"""Entity key of a cancel event that lacks the key: it cancels all the customer's
instances of that trigger (when in doubt, do not email)."""


def instance_id(trigger: str, customer_id: str, start_message_id: str) -> str:
    """Deterministic id of a trigger instance; the `unique_id` of what it emits."""
    text = f"{trigger}\x1f{customer_id}\x1f{start_message_id}"
    return "trg_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def path_values(data: Mapping[str, Any], path: str) -> list[Any]:
    """Values at `path`; `[]` expands a list, e.g. `properties.products[].product_id`."""
    head, sep, rest = path.partition("[].")
    if not sep:
        head = path.removesuffix("[]")
        value = get_path(data, head)
        if path.endswith("[]") and isinstance(value, list):
            return [v for v in value if not is_blank(v)]
        return [] if is_blank(value) else [value]
    items = get_path(data, head)
    if not isinstance(items, list):
        return []
    return [v for item in items if isinstance(item, Mapping) for v in path_values(item, rest)]


def key_values(data: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
    """Entity key values: the first path that gives any value wins."""
    for path in paths:
        if "[]" not in path:  # the common case, without building lists
            text = _text(get_path(data, path))
            if text:
                return [text]
            continue
        found = [_text(v) for v in path_values(data, path)]
        found = [v for v in found if v]
        if found:
            return list(dict.fromkeys(found))
    return []


def _text(value: Any) -> str:
    if type(value) is str:
        return value.strip()[:400]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()[:400]


def passes(match: EventMatch, data: Mapping[str, Any]) -> bool:
    """True when every `where` filter holds (a list value means any of)."""
    for path, wanted in match.where.items():
        value = get_path(data, path)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(value, option) for option in options):
            return False
    return True


def _same(value: Any, wanted: Any) -> bool:
    # Python's `False == 0` and `True == 1`: `where = { paid = false }` matched `0`.
    if isinstance(value, bool) or isinstance(wanted, bool):
        return type(value) is type(wanted) and value == wanted
    return bool(value == wanted)


@dataclass(slots=True)
class EventIndex:
    """Event name → the triggers it starts, cancels or counts."""

    starts: dict[str, list[tuple[TriggerSettings, EventMatch]]] = field(default_factory=dict)
    cancels: dict[str, list[tuple[TriggerSettings, EventMatch]]] = field(default_factory=dict)
    # Per (table, event name) without `where` filters: its triggers, found once.
    plain: dict[tuple[str, str], list[TriggerSettings]] = field(default_factory=dict)

    @classmethod
    def build(cls, triggers: Iterable[TriggerSettings]) -> EventIndex:
        """Index every trigger's `on` and `cancel_on` matches by event name."""
        index = cls()
        for trigger in triggers:
            for match in trigger.on:
                for name in match.event:
                    index.starts.setdefault(name, []).append((trigger, match))
            for match in trigger.cancel_on:
                for name in match.event:
                    index.cancels.setdefault(name, []).append((trigger, match))
        return index

    def started(self, message: Message) -> list[TriggerSettings]:
        """Triggers this message starts (or counts toward), each once."""
        return self._find("starts", self.starts, message)

    def cancelled(self, message: Message) -> list[TriggerSettings]:
        """Triggers whose instances this message may cancel, each once."""
        return self._find("cancels", self.cancels, message)

    def _find(
        self,
        kind: str,
        table: Mapping[str, list[tuple[TriggerSettings, EventMatch]]],
        message: Message,
    ) -> list[TriggerSettings]:
        if message.type != "track" or message.event is None:
            return []
        plain = self.plain.get((kind, message.event))
        if plain is not None:
            return list(plain)  # no filters: every candidate matches (the common case)
        candidates = table.get(message.event)
        if not candidates:
            return []
        if all(not match.where for _trigger, match in candidates):
            found = list({trigger.name: trigger for trigger, _match in candidates}.values())
            self.plain[(kind, message.event)] = found
            return list(found)
        out: dict[str, TriggerSettings] = {}
        for trigger, match in candidates:
            if trigger.name not in out and passes(match, message.raw):
                out[trigger.name] = trigger
        return list(out.values())
