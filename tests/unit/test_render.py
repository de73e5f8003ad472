"""What the customer reads: wording per language, money, expiry time, SMS cost."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

import pytest
from babel.numbers import get_currency_precision
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.currency import CURRENCY_EXPONENTS
from domain.notifications import PaymentLinkNotification
from workers.notifications import formatting, render, sms_segments
from workers.notifications.formatting import COUNTRY_ZONES, format_expiry, locale_for, zone_for
from workers.notifications.sms import GSM7_BASIC, GSM7_EXTENSION, is_gsm7, sms_encoding
from workers.notifications.templates import TEMPLATES

NBSP = "\u00a0"
#: A 43-character token (32 random bytes, url-safe base64) under the default base URL.
TOKEN = "Qk3v9x_L2mZ8r4TtYw1pNc6HbJdE0sFa7uGiOkXyV5q"
LINK = f"https://pay.paylink.example/l/{TOKEN}"
#: A long but plausible production checkout host, for the worst-case SMS.
LONGEST_LINK = f"https://checkout.payments.example-merchant-platform.com/pay/l/{TOKEN}"

BASE = PaymentLinkNotification(
    notification_id=UUID("6f1c1f47-3b7e-4a8e-9a55-2d7c0f0e8b11"),
    order_id=UUID("0b7e1c2a-8d4f-4f6a-b1f3-9c2e5d7a4b60"),
    channel="sms",
    recipient="+46701234567",
    store_name="Fjällräven Outlet",
    purchase_country="SE",
    currency="SEK",
    order_amount=123450,
    link_url=LINK,
    expires_at=datetime(2025, 7, 15, 13, 5, tzinfo=UTC),
    merchant_reference="ORD-2025-004711",
)

#: Realistic order per language: (country, currency, amount, store).
REALISTIC = {
    "sv_SE": ("SE", "SEK", 123450, "Fjällräven Outlet Stockholm"),
    "nb_NO": ("NO", "NOK", 249900, "Sport Øst Bergen AS"),
    "da_DK": ("DK", "DKK", 89995, "Søstrene Ærø Boligudstyr ApS"),
    "fi_FI": ("FI", "EUR", 4990, "Kahvila Äänekoski Oy"),
    "de_DE": ("DE", "EUR", 123456, "Müller & Söhne Fahrradladen GmbH"),
    "de_AT": ("AT", "EUR", 7800, "Wiener Kaffeehaus Jänner KG"),
    "de_CH": ("CH", "CHF", 1234550, "Zürcher Uhren & Schmuck AG"),
    "en_GB": ("GB", "GBP", 2599, "The Highland Tea Company Ltd"),
    "en_US": ("US", "USD", 1234599, "Brooklyn Bagel Supply Co."),
}


def notification(**changes: object) -> PaymentLinkNotification:
    return replace(BASE, **changes)  # type: ignore[arg-type]


# --- wording per language ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "phrases"),
    [
        ("SE", ["Hej!", "Betala nu", "Länken är giltig till", "Vänliga hälsningar"]),
        ("NO", ["Hei!", "Betal nå", "Lenken er gyldig til", "Vennlig hilsen"]),
        ("DK", ["Hej,", "Betal nu", "Linket er gyldigt indtil", "Venlig hilsen"]),
        ("FI", ["Hei!", "Maksa nyt", "Linkki on voimassa", "Ystävällisin terveisin"]),
        ("DE", ["Guten Tag,", "Jetzt bezahlen", "Der Link ist gültig bis", "Grüßen"]),
        ("AT", ["Guten Tag,", "Jetzt bezahlen", "Der Link ist gültig bis"]),
        ("CH", ["Guten Tag,", "Mit freundlichen Grüssen"]),
        ("GB", ["Hello,", "Pay now", "The link is valid until", "Kind regards,"]),
        ("US", ["Hello,", "Pay now", "The link is valid until"]),
    ],
)
def test_each_country_reads_its_own_language(country: str, phrases: list[str]) -> None:
    # Given an order placed in the country / When the message is rendered
    message = render(notification(purchase_country=country, channel="email"))
    # Then text and HTML both carry the language's wording, the store, link and reference
    for phrase in phrases:
        assert phrase in message.text
        assert phrase in message.html
    for part in ("Fjällräven Outlet", LINK, "ORD-2025-004711"):
        assert part in message.text
    assert "Fjällräven Outlet" in message.subject


@pytest.mark.parametrize(
    ("country", "subject", "sms"),
    [
        ("SE", "Påminnelse: din betalningslänk från", "Påminnelse:"),
        ("NO", "Påminnelse: betalingslenke fra", "Påminnelse:"),
        ("DK", "Påmindelse: betalingslink fra", "Påmindelse:"),
        ("FI", "Muistutus:", "Muistutus:"),
        ("DE", "Erinnerung: Ihr Zahlungslink von", "Erinnerung:"),
        ("CH", "Erinnerung: Ihr Zahlungslink von", "Erinnerung:"),
        ("GB", "Reminder: your payment link from", "Reminder:"),
    ],
)
def test_a_reminder_says_so_in_the_customers_language(country: str, subject: str, sms: str) -> None:
    # Given the reminder before expiry of an order placed in the country
    first = render(notification(purchase_country=country, channel="email"))
    # When it is rendered
    message = render(notification(purchase_country=country, channel="email", reminder=True))
    # Then subject, bodies and SMS are the reminder's, with the same link and deadline
    assert message.subject.startswith(subject)
    assert sms in message.sms
    assert LINK in message.html
    assert message.sms.endswith(LINK)
    # the body differs in its intro only: same link, reference, deadline and sign-off
    changed = set(first.text.splitlines()) ^ set(message.text.splitlines())
    assert len(changed) == 2
    assert LINK in message.text


def test_swiss_german_never_writes_eszett() -> None:
    message = render(notification(purchase_country="CH", currency="CHF"))
    assert "ß" not in message.text + message.html + message.subject + message.sms


@pytest.mark.parametrize("country", ["FR", "NL", "PL", "ZZ"])
def test_other_countries_fall_back_to_english(country: str) -> None:
    message = render(notification(purchase_country=country, currency="EUR"))
    assert message.subject == "Your payment link from Fjällräven Outlet"
    assert message.text.startswith("Hello,\n")


# --- money ------------------------------------------------------------------------------


def test_swedish_amount_is_grouped_with_spaces_and_a_decimal_comma() -> None:
    message = render(notification(purchase_country="SE", currency="SEK", order_amount=123450))
    assert f"1{NBSP}234,50{NBSP}kr" in message.text
    # The SMS spells the no-break spaces as plain spaces to stay in GSM-7.
    assert "1 234,50 kr" in message.sms


@pytest.mark.parametrize(
    ("country", "currency", "minor", "expected"),
    [
        ("DE", "EUR", 123450, f"1.234,50{NBSP}€"),
        ("AT", "EUR", 123450, f"€{NBSP}1.234,50"),
        ("CH", "CHF", 123450, f"CHF{NBSP}1’234.50"),
        ("DK", "DKK", 123450, f"1.234,50{NBSP}kr."),
        ("NO", "NOK", 123450, f"1{NBSP}234,50{NBSP}kr"),
        ("FI", "EUR", 5, f"0,05{NBSP}€"),
        ("US", "USD", 123450, "$1,234.50"),
        ("GB", "GBP", 99, "£0.99"),
        ("GB", "JPY", 12345, "JP¥12,345"),
        ("US", "JPY", 12345, "¥12,345"),
        ("GB", "KWD", 1234500, "KWD1,234.500"),
    ],
)
def test_amounts_are_exact_minor_units_in_the_locale(
    country: str, currency: str, minor: int, expected: str
) -> None:
    message = render(notification(purchase_country=country, currency=currency, order_amount=minor))
    assert expected in message.text


def test_babel_exponents_agree_with_the_domain_for_every_supported_currency() -> None:
    # The renderer divides by Babel's precision; a disagreement would misstate amounts.
    for currency, exponent in CURRENCY_EXPONENTS.items():
        assert get_currency_precision(currency) == exponent, currency


def test_huge_amounts_keep_every_minor_unit() -> None:
    message = render(notification(purchase_country="GB", currency="GBP", order_amount=10**17 + 1))
    assert "£1,000,000,000,000,000.01" in message.text


# --- expiry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "instant", "expected"),
    [
        # Sweden springs forward at 01:00 UTC on 30 March 2025.
        ("SE", datetime(2025, 3, 30, 0, 30, tzinfo=UTC), "söndag 30 mars 2025 kl. 01:30 CET"),
        ("SE", datetime(2025, 3, 30, 1, 30, tzinfo=UTC), "söndag 30 mars 2025 kl. 03:30 CEST"),
        # ... and falls back at 01:00 UTC on 26 October 2025.
        ("SE", datetime(2025, 10, 26, 0, 30, tzinfo=UTC), "kl. 02:30 CEST"),
        ("SE", datetime(2025, 10, 26, 1, 30, tzinfo=UTC), "kl. 02:30 CET"),
        ("DE", datetime(2025, 7, 15, 13, 5, tzinfo=UTC), "Dienstag, 15. Juli 2025 um 15:05 MESZ"),
        ("AT", datetime(2025, 1, 15, 13, 5, tzinfo=UTC), "Mittwoch, 15. Jänner 2025 um 14:05 MEZ"),
        ("GB", datetime(2025, 1, 15, 13, 5, tzinfo=UTC), "Wednesday, 15 January 2025 at 13:05 GMT"),
        ("GB", datetime(2025, 7, 15, 13, 5, tzinfo=UTC), "at 14:05 BST"),
        # The US springs forward on 9 March 2025 at 07:00 UTC (02:00 EST).
        (
            "US",
            datetime(2025, 3, 9, 6, 30, tzinfo=UTC),
            "Sunday, March 9, 2025 at 1:30\u202fAM EST",
        ),
        ("US", datetime(2025, 3, 9, 7, 30, tzinfo=UTC), "at 3:30\u202fAM EDT"),
        # CLDR has no Finnish abbreviation for EET, so the offset is spelled out.
        (
            "FI",
            datetime(2025, 7, 15, 13, 5, tzinfo=UTC),
            "tiistai 15. heinäkuuta 2025 klo 16.05 UTC+03:00",
        ),
        ("FR", datetime(2025, 7, 15, 13, 5, tzinfo=UTC), "at 15:05 CEST"),
        ("ZZ", datetime(2025, 7, 15, 13, 5, tzinfo=UTC), "at 13:05 UTC"),
    ],
)
def test_expiry_is_local_wall_clock_time_with_the_zone(
    country: str, instant: datetime, expected: str
) -> None:
    message = render(notification(purchase_country=country, expires_at=instant))
    assert expected in message.text


def test_sms_expiry_is_short_and_local() -> None:
    instant = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    message = render(notification(purchase_country="SE", expires_at=instant))
    assert "giltig till 2025-03-30 kl. 03:30 CEST" in message.sms


def test_naive_expiry_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render(notification(expires_at=datetime(2025, 7, 15, 13, 5)))


# --- escaping and header safety ---------------------------------------------------------


def test_html_escapes_the_store_name_but_text_keeps_it_verbatim() -> None:
    store = 'Smith & Sons <script>alert("x")</script>'
    message = render(notification(store_name=store, purchase_country="GB", currency="GBP"))
    assert "<script>" not in message.html
    assert "Smith &amp; Sons &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in message.html
    assert store in message.text


def test_link_is_attribute_escaped_in_html() -> None:
    message = render(notification(link_url=f"{LINK}?a=1&b=2"))
    assert f'href="{LINK}?a=1&amp;b=2"' in message.html


def test_line_breaks_in_a_store_name_cannot_reach_the_subject() -> None:
    message = render(notification(store_name="Evil\r\nBcc: victim@example.com\u202e Shop"))
    assert "\r" not in message.subject
    assert "\n" not in message.subject
    assert "\u202e" not in message.sender_name
    assert message.sender_name == "Evil Bcc: victim@example.com Shop"


# --- SMS segments -----------------------------------------------------------------------


def test_gsm7_tables_have_the_standard_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points minus the escape
    assert len(GSM7_EXTENSION) == 10


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # an escape pair is never split across segments
        ("äöåÄÖÅøØæÆüÜéß" * 10, 1),  # Nordic and German letters are GSM-7
        ("ł" * 70, 1),  # one non-GSM letter makes it UCS-2
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("a" * 159 + "ó", 3),  # ó is not GSM-7 (ò is): 160 UCS-2 units
        ("😀" * 35, 1),  # surrogate pairs count as two units
        ("😀" * 36, 2),
    ],
)
def test_sms_segments_counts_gsm7_and_ucs2(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_finnish_and_swedish_letters_keep_gsm7_but_polish_ones_do_not() -> None:
    assert sms_encoding("Hyvää päivää, Åsa Öberg") == "GSM-7"
    assert sms_encoding("Dzień dobry, Łódź") == "UCS-2"
    assert sms_encoding("Çava") == "GSM-7"
    assert sms_encoding("çava") == "UCS-2"


def test_every_template_writes_its_sms_in_gsm7() -> None:
    for template in TEMPLATES.values():
        for phrase in (template.sms, template.sms_compact, template.reminder_sms):
            assert is_gsm7(phrase), template.language


@pytest.mark.parametrize("reminder", [False, True])
@pytest.mark.parametrize("locale_tag", sorted(REALISTIC))
def test_realistic_sms_fits_two_gsm7_segments(locale_tag: str, reminder: bool) -> None:
    country, currency, amount, store = REALISTIC[locale_tag]
    message = render(
        notification(
            purchase_country=country,
            currency=currency,
            order_amount=amount,
            store_name=store,
            reminder=reminder,
        )
    )
    assert sms_segments(message.sms) <= 2
    assert sms_encoding(message.sms) == "GSM-7"
    assert message.sms.endswith(LINK)
    assert store in message.sms


@pytest.mark.parametrize("locale_tag", sorted(REALISTIC))
@pytest.mark.parametrize(
    "store",
    [
        "Fjällräven " * 23 + "AB",  # 255 characters, GSM-7
        ("Łódź Ćwiczenia Śródmieście " * 10)[:255],  # 255 characters, not GSM-7
        "😀" * 255,
    ],
)
@pytest.mark.parametrize("reminder", [False, True])
def test_worst_case_sms_never_exceeds_two_segments(
    locale_tag: str, store: str, reminder: bool
) -> None:
    country, currency, _, _ = REALISTIC[locale_tag]
    message = render(
        notification(
            purchase_country=country,
            currency=currency,
            order_amount=999_999_999_99,
            store_name=store,
            link_url=LONGEST_LINK,
            reminder=reminder,
        )
    )
    assert sms_segments(message.sms) <= 2
    assert message.sms.endswith(LONGEST_LINK)


def test_a_long_store_name_is_cut_with_a_mark() -> None:
    message = render(notification(store_name="Fjällräven " * 23 + "AB"))
    store_part = message.sms.split(": ", 1)[0]
    assert store_part.startswith("Fjällräven Fjällräven")
    assert store_part.endswith("...")


def test_a_non_gsm7_store_name_is_spelled_in_gsm7_rather_than_doubling_the_cost() -> None:
    message = render(notification(store_name="Sklep Łódź Śródmieście"))
    assert message.sms.startswith("Sklep Lodz Srodmiescie: ")
    assert sms_encoding(message.sms) == "GSM-7"


def test_a_non_gsm7_symbol_becomes_the_iso_code_in_the_sms() -> None:
    message = render(notification(purchase_country="GB", currency="INR", order_amount=123456))
    assert "₹1,234.56" in message.text
    assert "INR1,234.56" in message.sms


@pytest.mark.parametrize("store", ["", "\u200b\u202e"])
def test_a_store_without_a_printable_name_gets_an_sms_without_one(store: str) -> None:
    message = render(notification(store_name=store))
    assert message.sms.startswith("Din betalningslänk för 1 234,50 kr")
    assert sms_segments(message.sms) <= 2


def test_a_name_without_a_gsm7_spelling_is_kept_in_ucs2_with_the_compact_wording() -> None:
    message = render(notification(store_name="北京百货商店" * 40))
    assert message.sms.startswith("北京百货商店")
    assert "..." in message.sms
    assert message.sms.endswith(f"Betala 1 234,50 kr: {LINK}")
    assert sms_encoding(message.sms) == "UCS-2"
    assert sms_segments(message.sms) <= 2


def test_with_no_room_for_even_part_of_such_a_name_the_expiry_still_goes_out() -> None:
    message = render(
        notification(store_name="😀" * 255, order_amount=999_999_999_99, link_url=LONGEST_LINK)
    )
    assert message.sms.startswith("Din betalningslänk för 999 999 999,99 kr, giltig till")
    assert sms_segments(message.sms) <= 2


@settings(max_examples=300, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
    ),
    country=st.sampled_from(sorted(COUNTRY_ZONES)),
    width=st.sampled_from(["full", "short"]),
)
# The seconds around EU (01:00 UTC) and US Eastern (07:00 / 06:00 UTC) clock changes.
@example(instant=datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC), country="SE", width="full")
@example(instant=datetime(2026, 3, 29, 1, 0, 0, 500000, tzinfo=UTC), country="SE", width="full")
@example(instant=datetime(2026, 10, 25, 0, 59, 30, tzinfo=UTC), country="DE", width="short")
@example(instant=datetime(2026, 10, 25, 1, 0, 30, tzinfo=UTC), country="GB", width="short")
@example(instant=datetime(2026, 3, 8, 7, 0, 59, tzinfo=UTC), country="US", width="full")
@example(instant=datetime(2026, 11, 1, 5, 59, 59, tzinfo=UTC), country="US", width="short")
def test_the_cached_expiry_text_is_the_one_of_the_exact_instant(
    instant: datetime, country: str, width: str
) -> None:
    """The text is cached per minute; every second of that minute (a DST change
    included) reads the same as formatting the exact instant would."""
    zone, locale = zone_for(country), locale_for(country)
    exact = formatting._expiry_text.__wrapped__(instant, zone, locale, width, "{date} {time}")
    assert format_expiry(instant, zone, locale, date_width=width, joiner="{date} {time}") == exact
