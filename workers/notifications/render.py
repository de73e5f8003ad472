"""Render a payment-link notification into the subject, bodies and SMS the customer gets.

One function, :func:`render`, so the local outbox and the real providers can never
disagree about what a customer reads.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from domain.notifications import PaymentLinkNotification
from workers.notifications.formatting import (
    format_amount,
    format_expiry,
    locale_for,
    zone_for,
)
from workers.notifications.sms import gsm7_fold, gsm7_spelling, is_gsm7, sms_segments
from workers.notifications.templates import Template, template_for

#: Most segments an SMS may cost: one link, at most two billed messages.
MAX_SMS_SEGMENTS = 2
#: Appended to a store name cut short in an SMS ("..." because "…" is not GSM-7).
_TRUNCATION_MARK = "..."


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    sms: str
    #: The store name cleaned for a From header (no control characters or line breaks).
    sender_name: str


def render(notification: PaymentLinkNotification) -> RenderedMessage:
    locale = locale_for(notification.purchase_country)
    zone = zone_for(notification.purchase_country)
    template = template_for(str(locale))
    if notification.reminder:
        template = template.as_reminder()
    store = clean_display_text(notification.store_name)
    amount = format_amount(notification.order_amount, notification.currency, locale)
    expiry = format_expiry(
        notification.expires_at, zone, locale, date_width="full", joiner=template.date_time
    )
    values = {
        "store": store,
        "amount": amount,
        "reference": clean_display_text(notification.merchant_reference),
        "expiry": expiry,
        "url": notification.link_url,
    }
    sms_amount = gsm7_spelling(amount)
    if not is_gsm7(sms_amount):
        sms_amount = gsm7_spelling(
            format_amount(notification.order_amount, notification.currency, locale, iso_code=True)
        )
    sms_expiry = gsm7_spelling(
        format_expiry(
            notification.expires_at, zone, locale, date_width="short", joiner=template.date_time
        )
    )
    sms = fit_sms(
        template,
        store=store,
        amount=sms_amount,
        expiry=sms_expiry,
        url=notification.link_url,
    )
    return RenderedMessage(
        subject=template.subject.format(**values),
        text=_text_body(template, values),
        html=_html_body(template, values),
        sms=sms,
        sender_name=store,
    )


def clean_display_text(text: str) -> str:
    """Collapse whitespace and drop control characters, so a name cannot break a header.

    Format characters (bidi overrides, zero-width joiners) go too: in a sender name
    they only serve to make one store look like another.
    """
    kept: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category in {"Cc", "Zs", "Zl", "Zp"}:
            kept.append(" ")
        elif category not in {"Cf", "Cs", "Co", "Cn"}:
            kept.append(char)
    return " ".join("".join(kept).split())


def fit_sms(template: Template, *, store: str, amount: str, expiry: str, url: str) -> str:
    """The SMS with as much of the store name as fits in :data:`MAX_SMS_SEGMENTS`.

    In order: the real name; its GSM-7 spelling (one Polish "ł" would otherwise turn
    the whole text into UCS-2, 67 characters a segment), cut short if need be; and
    then the same with the compact wording, which leaves out the expiry. The link and
    the amount are never cut.
    """

    def full(name: str) -> str:
        return template.sms.format(store=name, amount=amount, expiry=expiry, url=url)

    def compact(name: str) -> str:
        return template.sms_compact.format(store=name, amount=amount, url=url)

    if store and sms_segments(text := full(store)) <= MAX_SMS_SEGMENTS:
        return text
    # The GSM-7 spelling first; the real one (UCS-2) when nothing of it survives folding.
    names = [name for name in dict.fromkeys((gsm7_fold(store), store)) if name]
    for compose in (full, compact):
        for name in names:
            fitted = _longest_fitting_prefix(compose, name)
            if fitted is not None:
                return fitted
    for compose in (full, compact):  # no name at all (an empty or unprintable one)
        text = compose("").removeprefix(": ")
        if sms_segments(text) <= MAX_SMS_SEGMENTS:
            return text
    raise ValueError("payment link too long to fit in a two-segment SMS")


def _longest_fitting_prefix(compose: Callable[[str], str], name: str) -> str | None:
    """Binary search for the longest (marked) prefix of ``name`` that still fits.

    Cost only grows with the prefix, so the search is sound; ``None`` when not even a
    one-character name fits.
    """

    def attempt(length: int) -> str:
        if length >= len(name):
            return compose(name)
        return compose(name[:length].rstrip() + _TRUNCATION_MARK)

    low, high, best = 1, len(name), None
    while low <= high:
        middle = (low + high) // 2
        text = attempt(middle)
        if sms_segments(text) <= MAX_SMS_SEGMENTS:
            best, low = text, middle + 1
        else:
            high = middle - 1
    return best


def _text_body(template: Template, values: dict[str, str]) -> str:
    lines = [
        template.greeting,
        "",
        template.intro.format(**values),
        template.reference.format(**values),
        "",
        f"{template.call_to_action}: {values['url']}",
        "",
        template.expiry.format(**values),
        "",
        template.closing,
        "",
        template.sign_off,
        values["store"],
    ]
    return "\n".join(lines) + "\n"


_HTML = """\
<!DOCTYPE html>
<html lang="{language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{subject}</title>
</head>
<body style="margin:0;padding:24px;font-family:Arial,Helvetica,sans-serif;\
font-size:16px;line-height:1.5;color:#1a1a1a;">
<p>{greeting}</p>
<p>{intro}<br>{reference}</p>
<p><a href="{url}" style="display:inline-block;padding:12px 24px;background:#1a1a1a;\
color:#ffffff;text-decoration:none;border-radius:4px;">{call_to_action}</a></p>
<p>{expiry}</p>
<p style="font-size:14px;color:#555555;">{link}</p>
<p style="font-size:14px;color:#555555;">{closing}</p>
<p>{sign_off}<br>{store}</p>
</body>
</html>
"""


def _html_body(template: Template, values: dict[str, str]) -> str:
    """The HTML twin of the text body; every interpolated value is escaped once."""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return _HTML.format(
        language=template.language,
        subject=html.escape(template.subject.format(**values)),
        greeting=html.escape(template.greeting),
        intro=template.intro.format(**escaped),
        reference=template.reference.format(**escaped),
        url=escaped["url"],
        call_to_action=html.escape(template.call_to_action),
        expiry=template.expiry.format(**escaped),
        link=escaped["url"],
        closing=html.escape(template.closing),
        sign_off=html.escape(template.sign_off),
        store=escaped["store"],
    )
