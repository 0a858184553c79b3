"""Mailchimp problem documents (`application/problem+json`) and the error type behind them.

Titles are the human titles live Mailchimp responses carry ("Invalid Resource",
"Member Exists", ...), not the CamelCase glossary codes; see
shared/notes/esp-api-contracts.md §2.7.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8"
DESCRIBED_BY = (
    '<https://us1.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"'
)
VALIDATION_DETAIL = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array."
)
NOT_FOUND_DETAIL = "The requested resource could not be found."


@dataclass
class FieldError:
    """One entry of a problem document's `errors[]`."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        """As Mailchimp renders it."""
        return {"field": self.field, "message": self.message}


@dataclass
class MailchimpError(Exception):
    """An error answer; rendered as a problem document by the routing layer."""

    status: int
    title: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def problem(self, instance: str) -> dict[str, Any]:
        """The problem+json body with the given support id as `instance`."""
        body: dict[str, Any] = {
            "type": ERROR_DOCS,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        return body


def invalid(detail: str = VALIDATION_DETAIL, *errors: FieldError) -> MailchimpError:
    """400 Invalid Resource, optionally with field errors."""
    return MailchimpError(400, "Invalid Resource", detail, list(errors))


def invalid_field(name: str, message: str) -> MailchimpError:
    """400 Invalid Resource naming one field."""
    return invalid(VALIDATION_DETAIL, FieldError(name, message))


def not_found(detail: str = NOT_FOUND_DETAIL) -> MailchimpError:
    """404 Resource Not Found."""
    return MailchimpError(404, "Resource Not Found", detail)


def json_parse_error() -> MailchimpError:
    """400 JSON Parse Error (body is not JSON)."""
    return MailchimpError(
        400, "JSON Parse Error", "We encountered an unspecified JSON parsing error."
    )


def method_not_allowed() -> MailchimpError:
    """405 Method Not Allowed."""
    return MailchimpError(
        405,
        "Method Not Allowed",
        "The requested method and resource are not compatible. "
        "See the Allow header for this resource's available methods.",
    )


def member_exists(email: str) -> MailchimpError:
    """400 Member Exists (POST of an address already on the list)."""
    return MailchimpError(
        400,
        "Member Exists",
        f"{email} is already a list member. Use PUT to insert or update list members.",
    )


def compliance_state(email: str) -> MailchimpError:
    """400 Member In Compliance State (unsubscribed/cleaned asked to (re)subscribe)."""
    return MailchimpError(
        400,
        "Member In Compliance State",
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed.",
    )


def forgotten(email: str) -> MailchimpError:
    """400 Forgotten Email Not Subscribed (address was permanently deleted)."""
    return MailchimpError(
        400,
        "Forgotten Email Not Subscribed",
        f"{email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list.",
    )


def too_many_requests(limit: int) -> MailchimpError:
    """429 for the (limit+1)th simultaneous connection of one API key."""
    return MailchimpError(
        429,
        "Too Many Requests",
        f"You have exceeded the limit of {limit} simultaneous connections.",
    )


def type_name(value: Any) -> str:
    """The JSON-schema type word Mailchimp uses in 'Schema describes X, Y found instead'."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_mismatch(name: str, expected: str, value: Any) -> MailchimpError:
    """400 Invalid Resource for a field of the wrong JSON type."""
    return invalid_field(name, f"Schema describes {expected}, {type_name(value)} found instead")
