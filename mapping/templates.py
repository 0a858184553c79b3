"""Template preflight, pure: which variables a template uses, and which the mapping fills.

Klaviyo templates use Django-style tags: `{{ person.first_name }}`,
`{{ event.ProductName }}`, `{{ person.first_name|default:'there' }}`, and guards such
as `{% if person.first_name %}`. Mailchimp uses merge tags: `*|FNAME|*`, guarded by
`*|IF:FNAME|*` / `*|IFNOT:FNAME|*`.

A variable is fine when the mapping fills it with a fallback, or the template has its
own default or guard. It is a problem when the mapping does not fill it (the ESP would
render an empty string: an `error`) or fills it without a fallback (records lacking it
are rejected, or the template renders blank: a `warning`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from mapping.fields import FieldSpec, is_blank
from mapping.settings import StrictModel

Dialect = Literal["klaviyo", "mailchimp"]

_KLAVIYO_VAR = re.compile(r"\{\{\s*(.+?)\s*\}\}", re.S)
_KLAVIYO_GUARD = re.compile(r"\{%-?\s*(?:if|elif|ifnotequal|ifequal)\s+(?:not\s+)?([\w.|:'\"]+)")
_KLAVIYO_DEFAULT = re.compile(r"\|\s*default\s*:\s*(?:'([^']*)'|\"([^\"]*)\"|(\S+))")
_KLAVIYO_LOOKUP = re.compile(r"^(person|event)\|lookup:\s*['\"]([^'\"]+)['\"]")
_CHECKED_NAMESPACES = ("person.", "event.")

_MERGE_TAG = re.compile(r"\*\|([A-Za-z0-9_:\-]+)\|\*")
_MAILCHIMP_SYSTEM = frozenset(
    (
        "EMAIL",
        "UNSUB",
        "UPDATE_PROFILE",
        "FORWARD",
        "ARCHIVE",
        "ARCHIVE_LINK_SHORT",
        "MC_PREVIEW_TEXT",
        "MC_SUBJECT",
        "REWARDS",
        "REWARDS_TEXT",
        "CURRENT_YEAR",
        "ABOUT_LIST",
        "LIST_ADDRESS",
        "LIST_ADDRESSLINE",
        "LIST_NAME",
        "LIST_COMPANY",
        "LIST_DESCRIPTION",
        "LIST_URL",
        "HTML_LIST_ADDRESS_HTML",
        "LIST_ADDRESS_HTML",
        "USER_URL",
        "DATE",
        "UNIQID",
        "EMAIL_TYPE",
        "MC_LANGUAGE",
        "MC_LANGUAGE_LABEL",
        "ELSE",
        "END",
    )
)


class TemplateCheck(StrictModel):
    """`[[templates]]`: a template a sync sends into, and the fields that fill it."""

    destination: str = Field(description="Name of the Klaviyo or Mailchimp destination.")
    template: str = Field(
        description="Klaviyo template id or exact name; Mailchimp template id or campaign id."
    )
    kind: Literal["template", "campaign"] = Field(
        default="template", description="Mailchimp only: a saved template or a campaign."
    )
    fields: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Template variable (`person.first_name`, `event.X`, `FNAME`) → its field.",
    )


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable a template uses.

    Attributes:
        name: `person.first_name`, `event.Items`, or a merge tag such as `FNAME`.
        default: The template's own default, if it has one.
        guarded: True when the template tests it first (`{% if %}`, `*|IF:TAG|*`).
    """

    name: str
    default: str | None = None
    guarded: bool = False

    @property
    def covered_by_template(self) -> bool:
        """The template renders something sensible without a value."""
        return self.guarded or bool(self.default)


@dataclass(frozen=True, slots=True)
class Problem:
    """A template variable the mapping does not cover."""

    template: str
    variable: str
    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.template}: {self.message}"


def _klaviyo_name(expr: str) -> str | None:
    lookup = _KLAVIYO_LOOKUP.match(expr)
    if lookup:
        return f"{lookup.group(1)}.{lookup.group(2)}"
    head = expr.split("|", 1)[0].strip()
    if not head.startswith(_CHECKED_NAMESPACES):
        return None
    return head


def klaviyo_variables(text: str) -> list[Variable]:
    """The `person.*` and `event.*` variables of a Klaviyo template, first use first."""
    guards = {name for m in _KLAVIYO_GUARD.finditer(text) if (name := _klaviyo_name(m.group(1)))}
    found: dict[str, Variable] = {}
    for match in _KLAVIYO_VAR.finditer(text):
        expr = match.group(1)
        name = _klaviyo_name(expr)
        if name is None:
            continue
        default_match = _KLAVIYO_DEFAULT.search(expr)
        default = None
        if default_match:
            default = next(g for g in default_match.groups() if g is not None)
        held = found.get(name)
        if held is None or (held.default is None and default):
            found[name] = Variable(name, default or None, name in guards)
    return list(found.values())


def mailchimp_variables(text: str) -> list[Variable]:
    """The audience merge tags a Mailchimp template uses (system tags left out)."""
    tags = [m.group(1) for m in _MERGE_TAG.finditer(text)]
    guards = {
        tag.split(":", 1)[1]
        for tag in tags
        if tag.startswith(("IF:", "IFNOT:", "ELSEIF:")) and ":" in tag
    }
    found: dict[str, Variable] = {}
    for tag in tags:
        if ":" in tag or tag.upper() in _MAILCHIMP_SYSTEM:
            continue
        found.setdefault(tag, Variable(tag, None, tag in guards))
    return list(found.values())


def variables(text: str, dialect: Dialect) -> list[Variable]:
    """The variables of a template in its ESP's dialect."""
    return klaviyo_variables(text) if dialect == "klaviyo" else mailchimp_variables(text)


def check_variables(
    template: str, used: Iterable[Variable], fields: Mapping[str, FieldSpec]
) -> list[Problem]:
    """Problems for variables the mapping leaves unfilled or without a fallback.

    Args:
        template: How to name the template in messages (`klaviyo:Welcome (Xy12)`).
        used: Its variables.
        fields: Template variable → the field spec that fills it.
    """
    problems: list[Problem] = []
    for var in used:
        spec = fields.get(var.name)
        if var.covered_by_template:
            continue
        if spec is None:
            problems.append(
                Problem(
                    template,
                    var.name,
                    "error",
                    f"{var.name} is used but the mapping does not fill it and the template "
                    "has no default; it would render empty",
                )
            )
        elif is_blank(spec.fallback):
            consequence = "rejected" if spec.required else "sent without it (renders empty)"
            problems.append(
                Problem(
                    template,
                    var.name,
                    "warning",
                    f"{var.name} has no fallback: records without a value are {consequence}",
                )
            )
    return problems


def check_template(
    template: str, text: str, dialect: Dialect, fields: Mapping[str, FieldSpec]
) -> list[Problem]:
    """Extract a template's variables and check them against the mapping."""
    return check_variables(template, variables(text, dialect), fields)
