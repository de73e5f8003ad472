"""Currencies: minor-unit exponents, the purchase-country rule, and a plain formatter.

Amounts travel as integers in minor units everywhere (DESIGN §2), so the exponent is
the only thing the domain needs to know about a currency. Localised display (symbols,
separators) belongs to the notification adapters; :func:`format_minor` is for logs and
the CLI, where an exact, unambiguous rendering matters more than looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from domain.errors import ValidationFailed

#: ISO 4217 minor-unit exponents of the currencies paylink accepts. JPY and ISK have no
#: minor unit; KWD and BHD have three decimals (1 KWD = 1000 fils).
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        "AUD": 2,
        "BHD": 3,
        "CAD": 2,
        "CHF": 2,
        "CZK": 2,
        "DKK": 2,
        "EUR": 2,
        "GBP": 2,
        "HUF": 2,
        "ISK": 0,
        "JPY": 0,
        "KWD": 3,
        "NOK": 2,
        "NZD": 2,
        "PLN": 2,
        "SEK": 2,
        "USD": 2,
    }
)

#: Purchase country (ISO 3166-1 alpha-2) decides the order currency (DESIGN §1).
COUNTRY_CURRENCY: Mapping[str, str] = MappingProxyType(
    {
        "AT": "EUR",
        "BE": "EUR",
        "CH": "CHF",
        "DE": "EUR",
        "DK": "DKK",
        "ES": "EUR",
        "FI": "EUR",
        "FR": "EUR",
        "GB": "GBP",
        "IE": "EUR",
        "IT": "EUR",
        "NL": "EUR",
        "NO": "NOK",
        "PL": "PLN",
        "PT": "EUR",
        "SE": "SEK",
        "US": "USD",
    }
)


def minor_unit_exponent(currency: str) -> int:
    """Number of decimals of ``currency`` (an upper-case ISO 4217 code)."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise ValidationFailed(
            f"Currency {currency!r} is not supported; use one of: "
            f"{', '.join(sorted(CURRENCY_EXPONENTS))}",
            code="CURRENCY_NOT_SUPPORTED",
        )
    return exponent


def currency_for_country(country: str) -> str:
    """The currency an order must use when the purchase happens in ``country``."""
    currency = COUNTRY_CURRENCY.get(country)
    if currency is None:
        raise ValidationFailed(
            f"Purchase country {country!r} is not supported; use an upper-case ISO 3166-1 "
            f"alpha-2 code, one of: {', '.join(sorted(COUNTRY_CURRENCY))}",
            code="COUNTRY_NOT_SUPPORTED",
        )
    return currency


def format_minor(amount: int, currency: str) -> str:
    """Render minor units exactly, e.g. ``format_minor(123450, "SEK") == "1234.50 SEK"``."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount < 0 else ""
    if exponent == 0:
        return f"{sign}{abs(amount)} {currency}"
    major, minor = divmod(abs(amount), 10**exponent)
    return f"{sign}{major}.{minor:0{exponent}d} {currency}"
