from __future__ import annotations

import pytest

from domain.currency import (
    COUNTRY_CURRENCY,
    CURRENCY_EXPONENTS,
    currency_for_country,
    format_minor,
    minor_unit_exponent,
)
from domain.errors import ValidationFailed


@pytest.mark.parametrize(
    ("country", "currency"),
    [
        ("SE", "SEK"),
        ("NO", "NOK"),
        ("FI", "EUR"),
        ("DK", "DKK"),
        ("GB", "GBP"),
        ("DE", "EUR"),
        ("NL", "EUR"),
        ("AT", "EUR"),
        ("ES", "EUR"),
        ("FR", "EUR"),
        ("BE", "EUR"),
        ("CH", "CHF"),
        ("US", "USD"),
        ("PL", "PLN"),
        ("IE", "EUR"),
        ("IT", "EUR"),
        ("PT", "EUR"),
    ],
)
def test_purchase_country_decides_the_currency(country: str, currency: str) -> None:
    assert currency_for_country(country) == currency


@pytest.mark.parametrize("country", ["XX", "se", "", "SWE"])
def test_unknown_purchase_country_is_rejected_with_a_clear_message(country: str) -> None:
    # When
    with pytest.raises(ValidationFailed) as raised:
        currency_for_country(country)

    # Then
    assert raised.value.code == "COUNTRY_NOT_SUPPORTED"
    assert repr(country) in raised.value.message
    assert "SE" in raised.value.message


def test_every_country_currency_has_a_known_exponent() -> None:
    assert set(COUNTRY_CURRENCY.values()) <= set(CURRENCY_EXPONENTS)


#: Written out from ISO 4217, independently of the table under test.
ISO_4217_EXPONENTS = {
    **dict.fromkeys(["SEK", "NOK", "DKK", "EUR", "GBP", "CHF", "USD", "PLN"], 2),
    **dict.fromkeys(["CZK", "HUF", "AUD", "CAD", "NZD"], 2),
    **dict.fromkeys(["JPY", "ISK"], 0),
    **dict.fromkeys(["KWD", "BHD"], 3),
}


@pytest.mark.parametrize(("currency", "exponent"), ISO_4217_EXPONENTS.items())
def test_currency_has_its_iso_4217_exponent(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


def test_unsupported_currency_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as raised:
        minor_unit_exponent("XBT")
    assert raised.value.code == "CURRENCY_NOT_SUPPORTED"


def test_currency_tables_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["XBT"] = 8  # type: ignore[index]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123_450, "SEK", "1234.50 SEK"),
        (5, "EUR", "0.05 EUR"),
        (0, "GBP", "0.00 GBP"),
        (-123_405, "SEK", "-1234.05 SEK"),
        (-5, "EUR", "-0.05 EUR"),
        (1234, "JPY", "1234 JPY"),
        (-7, "ISK", "-7 ISK"),
        (1_234_567, "KWD", "1234.567 KWD"),
        (5, "BHD", "0.005 BHD"),
        (100_000_000, "USD", "1000000.00 USD"),
    ],
)
def test_format_minor_renders_amounts_exactly(amount: int, currency: str, text: str) -> None:
    assert format_minor(amount, currency) == text


def test_format_minor_of_unsupported_currency_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as raised:
        format_minor(100, "XBT")
    assert raised.value.code == "CURRENCY_NOT_SUPPORTED"
