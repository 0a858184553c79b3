"""`MergeField` types and value conversion (audience fields, keyed by merge tag).

Mailchimp stores every merge field as one of a few types; a value of the wrong shape
is refused per member. Values are converted here, before sending, so a bad value is a
reject that names the record and the merge tag instead of a Mailchimp 400:

- text, url, imageurl, radio, dropdown, zip: a string (booleans as `true`/`false`,
  objects and lists as compact JSON);
- number: an int or float (numeric strings are parsed);
- date: formatted per the field's `date_format` (`MM/DD/YYYY`, `DD/MM/YYYY`,
  `YYYY-MM-DD`, …); birthday: `MM/DD` or `DD/MM`;
- address: a complete object `{addr1, addr2, city, state, zip, country}`; a Segment
  `traits.address` (`street`, `postal_code`) is renamed; addr1, city, state and zip
  are required by Mailchimp, so a partial address is refused;
- phone: E.164 (`+14155550100`), or `(415) 555-0100` for a `US`-format field, using
  `default_country` for numbers without a country code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import phonenumbers

from connectors.mailchimp.settings import MergeFieldSpec, MergeFieldType
from mapping.transforms.numeric import GROUPED_DIGITS

MERGE_TAG_MAX = 10
_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
_DATE_TOKENS = {"YYYY": "%Y", "MM": "%m", "DD": "%d"}
_ADDRESS_KEYS = {
    "addr1": ("addr1", "street", "address1", "line1", "addressLine1"),
    "addr2": ("addr2", "address2", "line2", "addressLine2"),
    "city": ("city",),
    "state": ("state", "region"),
    "zip": ("zip", "postal_code", "postalCode", "zipcode"),
    "country": ("country", "country_code"),
}
_ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")


class MergeFieldError(ValueError):
    """A value that cannot be stored in a merge field; names the tag."""

    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(f"merge_fields.{tag}: {reason}")
        self.tag = tag
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MergeField:
    """An audience field as Mailchimp describes it (`GET /lists/{id}/merge-fields`)."""

    tag: str
    name: str
    type: str
    required: bool = False
    default_value: str = ""
    date_format: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> MergeField:
        """Read one entry of the `merge_fields` array."""
        options = item.get("options") or {}
        return cls(
            tag=str(item.get("tag", "")),
            name=str(item.get("name", "")),
            type=str(item.get("type", "text")),
            required=bool(item.get("required", False)),
            default_value=str(item.get("default_value") or ""),
            date_format=options.get("date_format") or None,
        )


def is_valid_merge_tag(tag: str) -> bool:
    """Merge tags are upper-case letters, digits and `_`, at most 10 characters."""
    return _TAG.match(tag) is not None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


_NUMBER = re.compile(rf"^[+-]?({GROUPED_DIGITS}|\d+)?(\.\d*)?([eE][+-]?\d+)?$")


def _number(tag: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise MergeFieldError(tag, f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    number = value if isinstance(value, float) else None
    if number is None and _NUMBER.match(text):
        try:
            number = float(text.replace(",", ""))
        except ValueError:  # "e5", ".": the pattern's parts are all optional
            number = None
    # NaN and infinity have no JSON form: they would reach Mailchimp as null.
    if number is None or not math.isfinite(number):
        raise MergeFieldError(tag, f"expected a number, got {text[:40]!r}")
    return int(number) if number.is_integer() and not isinstance(value, float) else number


_MONTH_DAY = re.compile(r"^(\d{2})/(\d{2})$")


def _birthday(tag: str, value: Any, date_format: str) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    if _MONTH_DAY.match(text):
        # Already MM/DD or DD/MM: the audience's format is the user's to pick, but a
        # day that no year has (13/45, 04/31) is refused now, naming the tag. Read
        # in a leap year: 02/29 is a birthday.
        try:
            datetime.strptime(f"{text}/2000", _strftime(date_format) + "/%Y")
        except ValueError:
            raise MergeFieldError(
                tag, f"expected a birthday as {date_format.upper()}, got {text!r}"
            ) from None
        return text
    return _as_date(tag, value).strftime(_strftime(date_format))


def _as_date(tag: str, value: Any, date_format: str | None = None) -> date:
    """An ISO-8601 date, or one already written in the audience's `date_format`."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    if date_format:
        # A source that already writes the audience's format ("04/07/1990" for
        # MM/DD/YYYY) means what the marketer sees in Mailchimp; strptime also
        # refuses impossible dates such as 13/45/1990.
        try:
            return datetime.strptime(text, _strftime(date_format)).date()
        except ValueError:
            pass
        expected = f"an ISO-8601 date or {date_format.upper()}"
    else:
        expected = "an ISO-8601 date"
    raise MergeFieldError(tag, f"expected {expected}, got {text[:40]!r}")


def _strftime(date_format: str) -> str:
    pattern = date_format.upper()
    for token, directive in _DATE_TOKENS.items():
        pattern = pattern.replace(token, directive)
    return pattern


def _address(spec: MergeFieldSpec, tag: str, value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        raise MergeFieldError(tag, "expected an address object")
    out: dict[str, str] = {}
    for key, aliases in _ADDRESS_KEYS.items():
        for alias in aliases:
            found = value.get(alias)
            if found not in (None, ""):
                out[key] = _text(found)
                break
    if not out:
        return None  # an object without any address part is no address at all
    if "country" not in out and spec.default_country:
        out["country"] = spec.default_country
    missing = [key for key in _ADDRESS_REQUIRED if key not in out]
    if missing:
        raise MergeFieldError(
            tag, f"an address needs addr1, city, state and zip; missing {', '.join(missing)}"
        )
    return out


def _phone(spec: MergeFieldSpec, tag: str, value: Any) -> str:
    text = _text(value)
    try:
        parsed = phonenumbers.parse(text, spec.default_country)
    except phonenumbers.NumberParseException:
        raise MergeFieldError(tag, f"not a phone number: {text[:40]!r}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise MergeFieldError(tag, f"not a possible phone number: {text[:40]!r}")
    if spec.phone_format == "US":
        if parsed.country_code != 1:
            raise MergeFieldError(tag, f"not a US phone number: {text[:40]!r}")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def convert(tag: str, spec: MergeFieldSpec, value: Any) -> Any:
    """Convert one mapped value to what the merge field of `spec.type` stores.

    Args:
        tag: The merge tag, for error messages.
        spec: The declared field (type, date_format, default_country).
        value: The resolved, non-blank value.

    Returns:
        The value to send, or None when there is nothing to send (an object with no
        address part at all).

    Raises:
        MergeFieldError: The value cannot be stored in that field type.
    """
    kind: MergeFieldType = spec.type
    if kind == "number":
        return _number(tag, value)
    if kind == "date":
        date_format = spec.date_format or "YYYY-MM-DD"
        return _as_date(tag, value, date_format).strftime(_strftime(date_format))
    if kind == "birthday":
        return _birthday(tag, value, spec.date_format or "MM/DD")
    if kind == "address":
        return _address(spec, tag, value)
    if kind == "phone":
        return _phone(spec, tag, value)
    return _text(value)
