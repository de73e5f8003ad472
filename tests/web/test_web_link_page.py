"""The link page over a real database: what the customer sees, and what opening reports."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from messages import commands as c
from tests.web.support import Page
from workers.devtools.commands import LINES
from workers.web.app import opened_command_id

NBSP = "\xa0"


def text_of(html: str) -> str:
    """The page's visible words, one space between them (no tags, no entities)."""
    words = re.sub(r"<[^>]+>", " ", html).replace("&amp;", "&").replace(NBSP, " ")
    return " ".join(words.replace("\u202f", " ").split())


def test_live_link_shows_lines_discount_tax_total_terms_and_deadline(page: Page) -> None:
    # Given a Swedish email order of two shoes, socks and a welcome discount
    _order_id, token = page.shop.order()

    # When the customer opens the link
    response = page.client.get(f"/l/{token}")

    # Then the page shows the order in Swedish, in kronor, with the store's terms
    assert response.status_code == 200
    assert '<html lang="sv">' in response.text
    text = text_of(response.text)
    assert "Din beställning från Nordic Shoes" in text
    assert "Running shoe 2 1 000,00 kr" in text
    assert "Socks 1 100,00 kr" in text
    assert "Rabatt: Welcome discount -50,00 kr" in text
    assert "Totalt 1 050,00 kr" in text
    assert "Varav moms 210,00 kr" in text
    assert 'href="https://shoes.example/terms"' in response.text
    assert "Länken är giltig till måndag 23 november 2026 kl. 13:00 CET." in text
    assert "Betala 1 050,00 kr" in text


def test_first_view_reports_the_opening_and_reloads_publish_the_same_command(
    page: Page,
) -> None:
    # Given a link nobody has opened, and a broker that loses the first report
    order_id, token = page.shop.order()
    page.publisher.broker_down = True

    # When the customer opens it (report lost), reloads, and reloads once more
    first = page.client.get(f"/l/{token}")
    page.publisher.broker_down = False
    page.client.get(f"/l/{token}")
    page.client.get(f"/l/{token}")

    # Then the page showed the order anyway, the order went In Progress, and the one
    # report that reached the worker carries the link's own command id
    assert first.status_code == 200
    assert page.shop.row(order_id).link_status == "IN_PROGRESS"
    (opened,) = page.publisher.of(c.PaymentLinkOpened)
    link_id = page.shop.row(order_id).current_link_id
    assert opened.command_id == opened_command_id(link_id)
    assert [o.status for o in page.publisher.outcomes] == ["accepted"]


def test_the_opening_command_id_is_the_same_for_every_view_of_a_link(
    page_factory: Callable[..., Page],
) -> None:
    # Given two page processes whose views race the worker (nothing applied yet)
    page = page_factory(hold=True)
    _, token = page.shop.order()

    # When the link is viewed twice before the worker applies anything
    page.client.get(f"/l/{token}")
    page.client.get(f"/l/{token}")

    # Then both views published one and the same command
    first, second = page.publisher.of(c.PaymentLinkOpened)
    assert first.command_id == second.command_id
    assert first.model_dump(exclude={"issued_at"}) == second.model_dump(exclude={"issued_at"})


@pytest.mark.parametrize(
    ("country", "currency", "language", "total"),
    [
        ("SE", "SEK", "sv", "1 050,00 kr"),
        ("NO", "NOK", "nb", "1 050,00 kr"),
        ("DK", "DKK", "da", "1.050,00 kr."),
        ("FI", "EUR", "fi", "1 050,00 €"),
        ("DE", "EUR", "de", "1.050,00 €"),
        ("CH", "CHF", "de-CH", "CHF 1’050.00"),
        ("GB", "GBP", "en", "£1,050.00"),
    ],
)
def test_the_page_speaks_the_language_of_the_purchase_country(
    page: Page, country: str, currency: str, language: str, total: str
) -> None:
    # Given an order from a country whose emails have their own language
    _, token = page.shop.order(purchase_country=country, purchase_currency=currency)

    # When the customer opens the link
    response = page.client.get(f"/l/{token}")

    # Then the page is in that language and formats the total as the email does
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.text
    assert total in text_of(response.text)


def test_a_line_discount_is_shown_under_its_line(page: Page) -> None:
    # Given an order whose shoe line carries its own discount
    lines = [{**LINES[0], "total_discount_amount": 10_000}, LINES[1]]
    _, token = page.shop.order(order_lines=lines)

    # When the customer opens the link
    text = text_of(page.client.get(f"/l/{token}").text)

    # Then the discount is shown with the line, and the total is after it
    assert "Running shoe Rabatt -100,00 kr 2 900,00 kr" in text
    assert "Totalt 1 000,00 kr" in text


def test_the_page_works_without_javascript_and_loads_nothing_from_elsewhere(page: Page) -> None:
    # Given a live link
    _, token = page.shop.order()

    # When the page is fetched
    html = page.client.get(f"/l/{token}").text

    # Then it has no script, and every resource it loads is our own
    assert "<script" not in html.lower()
    assert re.findall(r'<link [^>]*href="([^"]+)"', html) == ["/static/page.css"]
    assert page.client.get("/static/page.css").status_code == 200
    assert re.search(r'<form method="post" action="/l/[^"]+/pay">', html)


def test_lookups_of_unknown_and_dead_tokens_run_the_same_statements(page: Page) -> None:
    # Given a cancelled order's link, and a token nobody issued
    order_id, dead = page.shop.order()
    page.shop.cancel(order_id)
    statements: list[str] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's lock statement, same for all
            statements.append(statement)

    event.listen(page.shop.engine, "before_cursor_execute", record)

    # When each is looked up
    assert page.client.get(f"/l/{dead}").status_code == 410
    for_dead = list(statements)
    statements.clear()
    assert page.client.get(f"/l/{'x' * 43}").status_code == 404
    for_unknown = list(statements)
    statements.clear()
    assert page.client.get("/l/short").status_code == 404
    for_malformed = list(statements)

    # Then the database did the same work for each
    assert len(for_dead) == 2
    assert for_dead == for_unknown == for_malformed


def test_a_link_checkers_head_request_does_not_open_the_link(page: Page) -> None:
    # Given a link a mail scanner probes before the customer reads the message
    order_id, token = page.shop.order()

    # When the scanner sends HEAD
    probed = page.client.head(f"/l/{token}")

    # Then the link is not reported opened
    assert probed.status_code == 200
    assert page.publisher.of(c.PaymentLinkOpened) == []
    assert page.shop.row(order_id).link_status == "CREATED"
