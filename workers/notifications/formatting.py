"""Locale, time zone, money and expiry formatting for one purchase country.

The customer reads the amount in their own conventions ("1 234,50 kr") and the expiry
in their own wall-clock time with the zone spelled out, because "valid until 14:00"
is a promise only if the reader knows which 14:00.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_timezone_name
from babel.numbers import format_currency, get_currency_precision

#: Purchase country -> locale of the message. Anything else reads British English.
COUNTRY_LOCALES: dict[str, str] = {
    "SE": "sv_SE",
    "NO": "nb_NO",
    "DK": "da_DK",
    "FI": "fi_FI",
    "DE": "de_DE",
    "AT": "de_AT",
    "CH": "de_CH",
    "GB": "en_GB",
    "US": "en_US",
}
DEFAULT_LOCALE = "en_GB"

#: Purchase country -> the zone most of its customers live in (one zone per country).
COUNTRY_ZONES: dict[str, str] = {
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels",
    "FR": "Europe/Paris",
    "ES": "Europe/Madrid",
    "GB": "Europe/London",
    "PL": "Europe/Warsaw",
    "US": "America/New_York",
}
DEFAULT_ZONE = "UTC"


def locale_for(country: str) -> Locale:
    return Locale.parse(COUNTRY_LOCALES.get(country.upper(), DEFAULT_LOCALE))


def zone_for(country: str) -> ZoneInfo:
    return ZoneInfo(COUNTRY_ZONES.get(country.upper(), DEFAULT_ZONE))


def format_amount(
    minor_units: int, currency: str, locale: Locale, *, iso_code: bool = False
) -> str:
    """Format an integer amount of minor units, exactly (Decimal, never float).

    ``iso_code`` writes "INR" instead of "₹": the SMS uses it when the symbol is not
    GSM-7, since one such character would double the message's cost.
    """
    currency = currency.upper()
    exponent = get_currency_precision(currency)
    amount = Decimal(minor_units).scaleb(-exponent)
    pattern = None
    if iso_code:
        standard = locale.currency_formats["standard"].pattern
        pattern = standard.replace("¤", "¤¤")
    return format_currency(amount, currency, format=pattern, locale=locale)


def zone_label(local: datetime, locale: Locale) -> str:
    """The zone as the locale abbreviates it ("CET", "MESZ", "EDT").

    Where CLDR has no abbreviation for the locale (Finnish has none for EET), Babel
    falls back to a bare "+0300"; the localized GMT form ("UTC+03:00") reads better.
    """
    label = get_timezone_name(local, width="short", locale=locale)
    if label[:1] in "+-":
        label = format_datetime(local, "ZZZZ", tzinfo=local.tzinfo, locale=locale)
    return str(label)


def format_expiry(
    instant: datetime, zone: ZoneInfo, locale: Locale, *, date_width: str, joiner: str
) -> str:
    """Format an instant as local date, time and zone, e.g. "15 July 2025 at 14:05 BST".

    ``joiner`` is the language's "{date} at {time}" phrase; ``date_width`` is a CLDR
    width ("full" for email, "short" for SMS).
    """
    if instant.tzinfo is None:
        raise ValueError("expiry must be timezone-aware")
    # Only the minute shows (zone offsets change on whole minutes), so links issued in
    # the same minute share one text: Babel's date and zone formatting, twice per
    # render (email and SMS), was a third of a render's CPU under cProfile.
    return _expiry_text(instant.replace(second=0, microsecond=0), zone, locale, date_width, joiner)


@lru_cache(maxsize=1024)
def _expiry_text(
    instant: datetime, zone: ZoneInfo, locale: Locale, date_width: str, joiner: str
) -> str:
    local = instant.astimezone(zone)
    date = format_date(local, date_width, locale=locale)
    time = format_time(local, "short", tzinfo=zone, locale=locale)
    return joiner.format(date=date, time=f"{time} {zone_label(local, locale)}")
