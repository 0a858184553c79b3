"""Preflight for `espbridge check`: compare the merge field mapping with the audience.

Runs before anything is sent and returns every problem found, so a run never starts
with a mapping Mailchimp would refuse member by member. Errors:

- `merge_tag_invalid`: a mapped merge tag is longer than 10 characters or uses
  characters other than A-Z, 0-9 and `_` (Mailchimp's merge tag rule);
- `merge_tag_unknown`: the mapping names a merge tag the audience does not have;
- `required_unmapped`: a required audience field is neither mapped nor given a
  fallback (Mailchimp would refuse every new member);
- `type_mismatch` / `date_format_mismatch`: the declared type or date format differs
  from the audience's, so converted values would be refused.

Warnings (`severity = "warning"`): a required field mapped without a fallback, whose
blank values will be rejected per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.merge_fields import MergeField, is_valid_merge_tag
from connectors.mailchimp.settings import MailchimpSettings
from mapping.fields import is_blank

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, as data for `espbridge check`."""

    code: str
    field: str
    message: str
    severity: Literal["error", "warning"] = "error"


def _date_formats_differ(field: MergeField, declared: str | None) -> bool:
    if field.type not in ("date", "birthday") or not field.date_format or not declared:
        return False
    return field.date_format.upper() != declared.upper()


def check_merge_fields(settings: MailchimpSettings, audience: list[MergeField]) -> list[Problem]:
    """Problems of the merge field mapping against the audience's fields (pure)."""
    problems: list[Problem] = []
    by_tag = {field.tag: field for field in audience}
    for tag, spec in settings.merge_fields.items():
        where = f"merge_fields.{tag}"
        if not is_valid_merge_tag(tag):
            problems.append(
                Problem(
                    "merge_tag_invalid",
                    where,
                    f"merge tag {tag!r} must be 1-10 characters of A-Z, 0-9 and _",
                )
            )
            continue
        field = by_tag.get(tag)
        if field is None:
            known = ", ".join(sorted(by_tag)) or "none"
            problems.append(
                Problem(
                    "merge_tag_unknown",
                    where,
                    f"audience {settings.list_id} has no merge field {tag} (it has: {known})",
                )
            )
            continue
        if field.type != spec.type:
            problems.append(
                Problem(
                    "type_mismatch",
                    where,
                    f"declared type {spec.type!r} but the audience field is {field.type!r}",
                )
            )
        elif _date_formats_differ(field, spec.date_format):
            problems.append(
                Problem(
                    "date_format_mismatch",
                    where,
                    f"declared date_format {spec.date_format!r} but the audience "
                    f"uses {field.date_format!r}",
                )
            )
    for field in audience:
        if not field.required:
            continue
        mapped = settings.merge_fields.get(field.tag)
        where = f"merge_fields.{field.tag}"
        if mapped is None:
            problems.append(
                Problem(
                    "required_unmapped",
                    where,
                    f"{field.tag} ({field.name}) is required by the audience but neither "
                    "mapped nor given a fallback",
                )
            )
        elif is_blank(mapped.fallback) and (mapped.path or is_blank(mapped.value)):
            problems.append(
                Problem(
                    "required_without_fallback",
                    where,
                    f"{field.tag} is required: records where it is blank will be rejected "
                    "(add a fallback to send them)",
                    "warning",
                )
            )
    return problems


async def fetch_merge_fields(client: MailchimpClient, list_id: str) -> list[MergeField]:
    """Every merge field of an audience (`GET /lists/{id}/merge-fields`, paged)."""
    fields: list[MergeField] = []
    offset = 0
    while True:
        response = await client.request(
            "GET", f"/lists/{list_id}/merge-fields", params={"count": PAGE, "offset": offset}
        )
        body = response.json()
        page = body.get("merge_fields") or []
        fields += [MergeField.from_api(item) for item in page]
        offset += len(page)
        if len(page) < PAGE or offset >= int(body.get("total_items", offset)):
            return fields


async def preflight(
    settings: MailchimpSettings, transport: httpx.AsyncBaseTransport | None = None
) -> list[Problem]:
    """Fetch the audience's merge fields and list every mapping problem.

    Raises:
        ESPError: The audience could not be read (bad key, unknown list, network).
    """
    client = MailchimpClient(settings, transport)
    try:
        audience = await fetch_merge_fields(client, settings.list_id)
    finally:
        await client.aclose()
    return check_merge_fields(settings, audience)
