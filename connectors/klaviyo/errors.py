"""Klaviyo's JSON:API error bodies: `{"errors": [{"detail", "source": {"pointer"}, ...}]}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.http import text_reason


@dataclass(frozen=True, slots=True)
class KlaviyoError:
    """One entry of Klaviyo's `errors[]`."""

    code: str
    detail: str
    pointer: str | None
    meta: Mapping[str, Any]


def error_entries(body: Any) -> list[KlaviyoError]:
    """Every well-formed entry of an error body (an empty list for anything else)."""
    entries = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        return []
    out: list[KlaviyoError] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        source = entry.get("source") if isinstance(entry.get("source"), Mapping) else {}
        pointer = source.get("pointer") if isinstance(source, Mapping) else None
        meta = entry.get("meta") if isinstance(entry.get("meta"), Mapping) else {}
        detail = entry.get("detail") or entry.get("title") or "no detail given"
        out.append(
            KlaviyoError(
                code=str(entry.get("code") or ""),
                detail=str(detail),
                pointer=pointer if isinstance(pointer, str) else None,
                meta=meta or {},
            )
        )
    return out


def parse_error(response: httpx.Response) -> tuple[str, str | None]:
    """(detail, pointer) of the first error in a Klaviyo error response."""
    try:
        entries = error_entries(response.json())
    except ValueError:
        return (text_reason(response), None)
    if not entries:
        return (f"HTTP {response.status_code}", None)
    first = entries[0]
    return (first.detail, first.pointer)


def split_pointer(pointer: str, collection: str) -> tuple[int, str | None] | None:
    """The row index and the field a pointer names inside a bulk body's collection.

    Args:
        pointer: e.g. `/data/attributes/events-bulk-create/data/3/attributes/email`.
        collection: The path of the list, e.g. `/data/attributes/events-bulk-create/data`.

    Returns:
        `(3, "email")`, `(3, None)` for the row itself, or None when the pointer
        does not point into that collection.
    """
    if not pointer.startswith(collection + "/"):
        return None
    index, _, rest = pointer[len(collection) + 1 :].partition("/")
    if not index.isdigit():
        return None
    field = rest.removeprefix("attributes/").replace("/", ".") if rest else None
    return int(index), field or None


def field_of(pointer: str | None) -> str | None:
    """The field named by a single-request pointer (`/data/attributes/email` → `email`)."""
    if not pointer:
        return None
    rest = pointer.removeprefix("/data").removeprefix("/attributes").strip("/")
    return rest.replace("/", ".") or None
