"""What the customer reads, formatted in their language: the order and the link pages.

Amounts and the deadline are formatted exactly as the customer's email formats them
(``workers.notifications.formatting``): the same locale, currency rules and time zone
from the purchase country, so the page and the message never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from jinja2 import Environment, FileSystemLoader, select_autoescape

from workers.notifications.formatting import format_amount, format_expiry, locale_for, zone_for
from workers.notifications.render import clean_display_text
from workers.notifications.templates import template_for
from workers.web.lookup import LinkState, LinkView
from workers.web.wording import Wording, wording_for

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class LineRow:
    name: str
    quantity: int | None
    amount: str
    #: A line's own discount ("−100,00 kr"), shown under it.
    discount: str | None


@dataclass(frozen=True, slots=True)
class Message:
    """A page that is only a title and what to do (dead links, errors)."""

    title: str
    text: str


def page_locale(view: LinkView, fallback: Locale) -> Locale:
    return locale_for(view.purchase_country) if view.purchase_country else fallback


def words(locale: Locale) -> Wording:
    return wording_for(str(locale))


def store_name(view: LinkView) -> str:
    return clean_display_text(view.store_name)


def order_context(view: LinkView, locale: Locale) -> dict[str, object]:
    """The live page's values: lines, discounts, tax, total and deadline, formatted."""
    w = words(locale)

    def money(minor: int) -> str:
        return format_amount(minor, view.currency, locale)

    rows = []
    for line in view.lines:
        discount_line = line.type == "discount"
        rows.append(
            LineRow(
                name=clean_display_text(line.name),
                quantity=None if discount_line else line.quantity,
                amount=money(line.total_amount),
                discount=money(-line.total_discount_amount) if line.total_discount_amount else None,
            )
        )
    discounts = [r for r, line in zip(rows, view.lines, strict=True) if line.type == "discount"]
    items = [r for r, line in zip(rows, view.lines, strict=True) if line.type != "discount"]
    if view.expires_at is None:
        raise ValueError("a live link has a deadline")
    expiry = format_expiry(
        view.expires_at,
        zone_for(view.purchase_country),
        locale,
        date_width="full",
        joiner=template_for(str(locale)).date_time,
    )
    terms_before, _, terms_after = w.terms.partition("{link}")
    store = store_name(view)
    return {
        "w": w,
        "store": store,
        "title": w.title.format(store=store),
        "heading": w.order_from.format(store=store),
        "reference": w.reference.format(reference=clean_display_text(view.reference)),
        "items": items,
        "discounts": discounts,
        "total": money(view.order_amount),
        "tax": w.tax_included.format(amount=money(view.order_tax_amount)),
        "terms_url": view.terms_url,
        "terms_before": terms_before,
        "terms_after": terms_after,
        "deadline": w.deadline.format(expiry=expiry),
        "pay": w.pay.format(amount=money(view.order_amount)),
    }


def dead_message(view: LinkView, w: Wording) -> Message:
    """What happened to a link that can no longer be paid, and what to do."""
    store = store_name(view)
    title, text = {
        LinkState.EXPIRED: (w.expired_title, w.expired),
        LinkState.SUPERSEDED: (w.superseded_title, w.superseded),
        LinkState.CANCELLED: (w.cancelled_title, w.cancelled),
        LinkState.PAID: (w.paid_title, w.paid),
        LinkState.UNKNOWN: (w.unknown_title, w.unknown),
    }[view.state]
    return Message(title.format(store=store), text.format(store=store))


def render(name: str, **context: object) -> str:
    return environment.get_template(name).render(**context)
