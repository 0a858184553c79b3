"""Tags: add and remove member tags, `POST /lists/{id}/members/{hash}/tags`.

Setting a tag active or inactive is idempotent. Tags come from `traits.tags`
(added), `traits.removed_tags` (removed) and the destination's `static_tags`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.mailchimp.actions import ApiRequest, BatchLimits, email_field, list_field
from connectors.mailchimp.hashing import subscriber_hash
from connectors.mailchimp.settings import MailchimpSettings
from mapping.fields import FieldSpec
from mapping.types import Message

NAME = "tags"
TITLE = "Add and remove tags"
FIELDS: dict[str, FieldSpec] = {
    "email": email_field(),
    "list_id": list_field(),
    "add": FieldSpec(path=["traits.tags"]),
    "remove": FieldSpec(path=["traits.removed_tags"]),
}
DESCRIPTIONS = {
    "list_id": "The audience, when a message names its own (else the destination's list_id).",
    "email": "The member's email address.",
    "add": "Tags to add: a list of names or a comma-separated string.",
    "remove": "Tags to remove: a list of names or a comma-separated string.",
}
LIMITS = BatchLimits(default=1, maximum=1)
TAG_NAME_MAX = 100


def subscribes(message: Message, settings: MailchimpSettings) -> bool:
    """Identify calls carry tag changes."""
    return message.type == "identify"


def tag_names(value: Any) -> list[str]:
    """Tag names from a list or a comma-separated string, trimmed, blanks dropped."""
    if value is None:
        return []
    items: Sequence[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of tag names, got {type(value).__name__}")
    names = [str(item).strip() for item in items if str(item).strip()]
    for name in names:
        # Mailchimp refuses the whole tags call for one name over 100 characters, and
        # every other tag change of that member with it: name the culprit up front.
        if len(name) > TAG_NAME_MAX:
            raise ValueError(
                f"tag name longer than {TAG_NAME_MAX} characters ({len(name)}): {name[:60]!r}…"
            )
    return names


def tag_changes(add: Sequence[str], remove: Sequence[str]) -> list[dict[str, str]]:
    """`[{name, status}]`; a tag both added and removed is removed (the later intent)."""
    removed = set(remove)
    added = [name for name in dict.fromkeys(add) if name not in removed]
    changes = [{"name": name, "status": "active"} for name in added]
    changes += [{"name": name, "status": "inactive"} for name in dict.fromkeys(remove)]
    return changes


def build_request(list_id: str, fields: Mapping[str, Any], is_syncing: bool) -> ApiRequest:
    """`POST /lists/{list_id}/members/{hash}/tags`."""
    return ApiRequest(
        "POST",
        f"/lists/{list_id}/members/{subscriber_hash(fields['email'])}/tags",
        {"tags": list(fields["tags"]), "is_syncing": is_syncing},
    )
