"""`minor_units:<currency>`: ISO 4217 exponents, and unknown codes refused at config load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mapping.currencies import MINOR_DIGITS, NO_MINOR_UNIT, minor_digits
from mapping.fields import FieldSpec, resolve, resolve_planned


def sent(transform: str, amount: Any) -> Any:
    """The value one field sends, through the generated and the plain resolver."""
    specs = {"f": FieldSpec(path=["x"], transform=[transform])}
    got = resolve(specs, {"x": amount})
    assert got == resolve_planned(specs, {"x": amount})
    return got.values["f"]


@pytest.mark.parametrize(
    ("transform", "amount", "expected"),
    [
        ("minor_units", "19.99", 1999),  # no currency named: 2 digits, as documented
        ("minor_units:USD", "19.99", 1999),
        ("minor_units:eur", 19.99, 1999),  # any case
        ("minor_units:JPY", 1200, 1200),
        ("minor_units:KRW", "1500", 1500),
        ("minor_units:ISK", 99.5, 100),  # half to even
        ("minor_units:CLP", "990", 990),
        ("minor_units:KWD", "1.234", 1234),
        ("minor_units:BHD", "0.5", 500),
        ("minor_units:TND", "2.0005", 2000),
        ("minor_units:CLF", "1.2345", 12345),
        ("minor_units:UYW", "3", 30000),
        ("minor_units:XCG", "10", 1000),  # the Caribbean guilder, new in 2025
    ],
)
def test_iso_4217_exponents(transform: str, amount: Any, expected: int) -> None:
    assert sent(transform, amount) == expected


@pytest.mark.parametrize("code", ["XYZ", "USX", "JPN", "abc", "HRK", "ANG"])
def test_an_unknown_currency_is_a_config_error_naming_it(code: str) -> None:
    # Was read as 2 digits: 1200 "JPN" (meant JPY) went out as 120000.
    with pytest.raises(ValidationError, match=f"unknown currency '{code}'"):
        FieldSpec(path=["x"], transform=[f"minor_units:{code}"])


@pytest.mark.parametrize("code", ["XAU", "XXX", "XDR", "XTS"])
def test_a_currency_without_minor_units_is_a_config_error_naming_it(code: str) -> None:
    with pytest.raises(ValidationError, match=f"currency '{code}' has no minor unit"):
        FieldSpec(path=["x"], transform=[f"minor_units:{code}"])


@pytest.mark.parametrize("arg", ["USDD", "US", "U$D", " JPY", "²", "٣"])
def test_other_arguments_are_config_errors_naming_them(arg: str) -> None:
    with pytest.raises(ValidationError, match="minor_units takes digits or an ISO 4217"):
        FieldSpec(path=["x"], transform=[f"minor_units:{arg}"])


def test_the_table_is_well_formed() -> None:
    assert len(MINOR_DIGITS) > 150
    assert not NO_MINOR_UNIT & MINOR_DIGITS.keys()
    for code, digits in MINOR_DIGITS.items():
        assert len(code) == 3 and code.isascii() and code.isupper(), code
        assert digits in (0, 2, 3, 4), code
    assert {code for code, digits in MINOR_DIGITS.items() if digits == 4} == {"CLF", "UYW"}
    assert minor_digits("jpy") == 0 and minor_digits("KWD") == 3
