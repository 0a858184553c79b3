"""ISO 4217 minor units: how many decimal digits an amount in each currency has.

The table is ISO 4217 list one as published on 2026-01-01 (SIX, the maintenance
agency). No dependency of espbridge carries it (babel and pycountry are not installed,
and phonenumbers has no currencies), and it changes a few times a year at most, so it
lives here. Codes no longer listed (HRK, ANG, BGN, SLL, ZWL, …) are unknown:
`minor_units:2` still converts such amounts.
"""

from __future__ import annotations

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_NONE = "XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR "
    "MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG "
    "SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD "
    "USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG"
)

MINOR_DIGITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}
"""Currency code → digits of its minor unit (JPY 0, USD 2, KWD 3, CLF 4)."""

NO_MINOR_UNIT = frozenset(_NONE.split())
"""Codes ISO 4217 lists without a minor unit ("N.A."): metals, units of account, the
testing code and "no currency". An amount in them has no minor units to count."""


def minor_digits(code: str) -> int:
    """The minor-unit digits of an ISO 4217 currency code (any case).

    Raises:
        ValueError: naming the code when ISO 4217 does not list it, or lists it without
            a minor unit; a guess (2) would silently send a wrong amount.
    """
    key = code.upper()
    if key in MINOR_DIGITS:
        return MINOR_DIGITS[key]
    if key in NO_MINOR_UNIT:
        raise ValueError(f"currency {code!r} has no minor unit in ISO 4217")
    raise ValueError(f"unknown currency {code!r}: not an ISO 4217 code")
