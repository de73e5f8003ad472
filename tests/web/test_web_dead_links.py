"""Dead links: each gets its own page that says what happened and what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from messages import commands as c
from tests.web.support import Page, Shop
from tests.web.test_web_link_page import text_of


def _expired(shop: Shop) -> str:
    _, token = shop.order()
    shop.clock.advance(hours=48)
    return token


def _superseded(shop: Shop) -> str:
    order_id, token = shop.order()
    shop.resend(order_id)
    return token


def _cancelled(shop: Shop) -> str:
    order_id, token = shop.order()
    shop.cancel(order_id)
    return token


def _unknown(_shop: Shop) -> str:
    return "Zz" * 21 + "z"


@pytest.mark.parametrize(
    ("make", "status", "state", "says"),
    [
        (_expired, 410, "expired", "Be Nordic Shoes att skicka en ny länk."),
        (_superseded, 410, "superseded", "Använd länken i det senaste meddelandet."),
        (_cancelled, 410, "cancelled", "Nordic Shoes har avbrutit beställningen"),
        (_unknown, 404, "unknown", "Check that you opened the whole link"),
    ],
    ids=["expired", "superseded", "cancelled", "unknown"],
)
def test_a_dead_link_says_what_happened_and_reports_nothing(
    page: Page, make: Callable[[Shop], str], status: int, state: str, says: str
) -> None:
    # Given a link that can no longer be paid
    token = make(page.shop)

    # When the customer opens it, and even posts the pay form
    response = page.client.get(f"/l/{token}")
    posted = page.client.post(f"/l/{token}/pay", data={"csrf": "x", "outcome": "approve"})

    # Then both show its own page, and nothing was published
    assert response.status_code == posted.status_code == status
    assert f'data-state="{state}"' in response.text
    assert says in text_of(response.text)
    assert page.publisher.published == []


def test_a_paid_link_thanks_the_customer_with_the_total(page: Page) -> None:
    # Given an order the customer paid
    _, token = page.shop.order()
    assert page.pay(token).status_code == 303

    # When the link is opened again
    response = page.client.get(f"/l/{token}")

    # Then it says the order is paid, with its total, and offers no pay form
    assert response.status_code == 200
    assert 'data-state="paid"' in response.text
    assert "1 050,00 kr" in text_of(response.text)
    assert "<form" not in response.text


def test_the_newest_link_of_a_resent_order_is_live(page: Page) -> None:
    # Given an order whose link was resent
    order_id, _old = page.shop.order()
    newest = page.shop.resend(order_id)

    # When the customer opens the newest link
    response = page.client.get(f"/l/{newest}")

    # Then it shows the order and reports the opening
    assert response.status_code == 200
    assert len(page.publisher.of(c.PaymentLinkOpened)) == 1


def test_an_unknown_link_speaks_the_browser_language(page: Page) -> None:
    # Given a browser that prefers Finnish
    headers = {"accept-language": "fi-FI,fi;q=0.9,en;q=0.5"}

    # When it opens a link nobody issued
    response = page.client.get(f"/l/{'q' * 43}", headers=headers)

    # Then the page is in Finnish
    assert response.status_code == 404
    assert '<html lang="fi">' in response.text
    assert "Maksulinkkiä ei löytynyt" in response.text


def test_a_database_failure_is_a_try_again_page_never_a_stack_trace(
    page: Page, tmp_path: Path
) -> None:
    # Given the page's database lost its tables
    _, token = page.shop.order()
    with page.shop.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE order_lines")

    # When the customer opens the link
    response = page.client.get(f"/l/{token}")

    # Then they are asked to try again later, and no internals are shown
    assert response.status_code == 503
    assert 'data-state="unavailable"' in response.text
    assert "Traceback" not in response.text
    assert "order_lines" not in response.text
