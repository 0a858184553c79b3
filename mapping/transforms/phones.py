"""Phone numbers: the `e164` / `e164:REGION` transform and the default region setting."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from mapping.transforms.base import Transform, TransformError
from mapping.transforms.text import text_of


@lru_cache(maxsize=65536)
def e164(value: str, region: str | None = None) -> str:
    """A phone number in E.164 (`+14155550100`).

    Raises:
        TransformError: when it is not a valid number (or has no country code and no
            region is configured).
    """
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise TransformError(f"e164: not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise TransformError(f"e164: not a valid phone number: {value[:40]!r}")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def phone_region(text: str) -> str | None:
    """`text` as an ISO 3166 region phonenumbers knows (any case, spaces trimmed), or None.

    An unknown region (`UK`, `USA`) would make every number written without +country
    silently invalid ("Missing or invalid default region"): callers refuse it in config.
    """
    code = text.strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


def default_region(text: str) -> str:
    """A `phone_default_region` setting as its ISO code, or a ValueError saying why not."""
    code = phone_region(text)
    if code is None:
        hint = " (the United Kingdom is GB)" if text.strip().upper() == "UK" else ""
        raise ValueError(
            f"{text!r} is not an ISO 3166 region phonenumbers knows, e.g. US, GB, DE{hint}"
        )
    return code


def e164_of(arg: str) -> Transform:
    """The transform `e164:arg` (`e164` when `arg` is empty: numbers need a +country).

    Raises:
        ValueError: when `arg` is not a region phonenumbers knows (a config error).
    """
    region = phone_region(arg) if arg.strip() else None
    if arg.strip() and region is None:
        raise ValueError(f"e164 needs a two-letter region such as e164:US, got {arg!r}")
    return lambda v: e164(text_of(v, "e164").strip(), region)
