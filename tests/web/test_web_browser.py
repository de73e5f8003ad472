"""The link page in a real browser, against the real service.

Headless Chromium from Debian's packages (``.ci/run`` installs it), driven by Playwright
with that system browser and JavaScript turned off (the page must work without it).
Worker, relay and scheduler run as processes on RabbitMQ and PostgreSQL
(``workers.devtools.harness``), ``paylink web`` as a process beside them; orders are created
through the broker as upstream creates them, and the customer opens the link paylink
wrote into the local file outbox. Screenshots stay under the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from messages import commands as c
from tests.services import missing
from workers.devtools.commands import configure_store, create_order, merchant
from workers.devtools.harness import ROOT, Harness, now

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
#: Every language the emails have, by the country whose orders are written in it.
LANGUAGES = {
    "SE": ("SEK", "sv"),
    "NO": ("NOK", "nb"),
    "DK": ("DKK", "da"),
    "FI": ("EUR", "fi"),
    "DE": ("EUR", "de"),
    "CH": ("CHF", "de-CH"),
    "GB": ("GBP", "en"),
}
#: Short enough to watch a link expire within the test.
LINK_TTL_SECONDS = 30
TERMS = "https://shoes.example/terms"


def _require_browser() -> None:
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    harness: Harness
    base_url: str
    shots: Path
    #: What the `paylink web` process wrote (its access log among it).
    web_log: Path

    def order(self, **kw: Any) -> tuple[uuid.UUID, str]:
        """Create an order through the broker; return it and the link the customer got."""
        cmd = create_order(**kw)
        self.harness.publish(cmd)
        sent = self.harness.wait_event("link.sent", order_id=cmd.order_id)
        return cmd.order_id, self.link_in_outbox(sent["link_id"])

    def link_in_outbox(self, link_id: str) -> str:
        message = (self.harness.workdir / "outbox" / f"{link_id}.eml").read_text()
        found = re.search(rf"{re.escape(self.base_url)}/[A-Za-z0-9_\-]{{40,}}", message)
        assert found, f"no link to {self.base_url} in the customer's message"
        return found.group(0)

    def run(self, command: c.CommandBase, expect: str) -> None:
        self.harness.publish(command)
        event = self.harness.wait_for(
            lambda: self.harness.events_for(command.command_id), what=type(command).__name__
        )[0]
        assert event["type"] == expect, event

    def orders_show(self, order_id: uuid.UUID) -> str:
        shown = subprocess.run(
            [sys.executable, "-m", "workers.cli", "orders", "show", str(order_id)],
            cwd=ROOT,
            env={**self.harness.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=True,
        )
        return shown.stdout


@pytest.fixture
def stack(harness_factory: Callable[..., Harness], tmp_path: Path) -> Stack:
    _require_browser()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/l"
    harness = harness_factory(
        PAYLINK_CHECKOUT_BASE_URL=base_url,
        PAYLINK_WEB_PORT=str(port),
        PAYLINK_LINK_TTL_SECONDS=str(LINK_TTL_SECONDS),
    )
    harness.start_all()
    web = harness.start(
        "web",
        [sys.executable, "-m", "workers.cli", "web", "--health-port", str(_free_port())],
    )
    harness.wait_for(lambda: _listening(port), 30, "paylink web to listen")
    assert web.popen.poll() is None, harness.logs()[-3000:]
    currencies = sorted({currency for currency, _ in LANGUAGES.values()})
    store = configure_store(agreement_currencies=currencies, terms_url=TERMS)
    harness.publish(store)
    harness.wait_event("store.configured", command_id=store.command_id)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return Stack(harness, base_url, shots, web.log)  # the harness stops every process


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def browser() -> Iterator[Any]:
    _require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def _text(page: Any, selector: str) -> str:
    return " ".join(page.inner_text(selector).replace("\xa0", " ").split())


def test_a_customer_opens_the_real_link_and_pays_it_with_the_sandbox(
    stack: Stack, browser: Any
) -> None:
    # Given a Swedish order created through the broker, its link in the customer's email
    order_id, link = stack.order(purchase_country="SE")
    context = browser.new_context(java_script_enabled=False, locale="sv-SE")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    # When the customer opens it in the browser
    page.goto(link)

    # Then they see the total, the store's terms and the order goes In Progress
    assert _text(page, "#total") == "1 050,00 kr"
    assert page.get_attribute("#terms", "href") == TERMS
    assert page.get_attribute("html", "lang") == "sv"
    stack.harness.wait_for(
        lambda: stack.harness.order_row(order_id).link_status == "IN_PROGRESS",
        what="the order to go In Progress",
    )
    page.screenshot(path=stack.shots / "sv-order.png", full_page=True)

    # When they pay, leaving the sandbox outcome at approve
    page.check("input[name=outcome][value=approve]")
    page.click("#pay")

    # Then the receipt (reloading itself until the worker applied it) thanks them
    page.wait_for_selector('[data-state="paid"]', timeout=30_000)
    page.screenshot(path=stack.shots / "sv-paid.png", full_page=True)
    assert "1 050,00 kr" in _text(page, "main")
    # and the operator sees the order Completed and Authorized
    assert "Authorized (link Completed)" in stack.orders_show(order_id)
    assert stack.harness.order_row(order_id).authorization_id.startswith("sbx_")
    assert not [p for p in problems if "Content Security Policy" in p], problems
    # and the page's process logged each request by its route, never the token
    served = stack.web_log.read_text()
    assert '"route": "/l/{token}/pay"' in served
    assert link.rsplit("/", 1)[1] not in served
    context.close()


def test_the_page_is_written_in_each_language_the_emails_have(stack: Stack, browser: Any) -> None:
    # Given a browser, and for each country whose emails have their own language...
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()

    for country, (currency, language) in LANGUAGES.items():
        # ...an order, whose customer opens the link at once (it lives LINK_TTL_SECONDS)
        _, link = stack.order(purchase_country=country, purchase_currency=currency)
        page.goto(link)

        # Then the page is in their language, and a screenshot of it is kept
        assert page.get_attribute("html", "lang") == language
        assert page.is_visible("#pay")
        page.screenshot(path=stack.shots / f"{language}.png", full_page=True)
    context.close()
    assert sorted(p.stem for p in stack.shots.iterdir()) == sorted(
        language for _, language in LANGUAGES.values()
    )


def test_each_dead_link_shows_its_own_page(stack: Stack, browser: Any) -> None:
    # Given a link left to expire, one replaced by a resend, one of a cancelled order,
    # one already paid, and one nobody issued
    lapsing_id, lapsing = stack.order()
    resent_id, replaced = stack.order()
    stack.run(merchant(c.ResendPaymentLink, resent_id), "link.resent")
    cancelled_id, cancelled = stack.order()
    stack.run(merchant(c.CancelOrder, cancelled_id), "order.cancelled")
    _, paid = stack.order()
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    page.goto(paid)
    page.click("#pay")
    page.wait_for_selector('[data-state="paid"]', timeout=30_000)
    unknown = f"{stack.base_url}/{'Q' * 43}"
    stack.harness.wait_event("link.expired", order_id=lapsing_id, timeout=LINK_TTL_SECONDS + 30)

    for state, link, says in [
        ("expired", lapsing, "Be Nordic Shoes att skicka en ny länk."),
        ("superseded", replaced, "Använd länken i det senaste meddelandet."),
        ("cancelled", cancelled, "Nordic Shoes har avbrutit beställningen"),
        ("paid", paid, "Beställningen är betald."),
        ("unknown", unknown, "Check that you opened the whole link"),
    ]:
        # When the customer opens it
        response = page.goto(link)

        # Then its own page says what happened and what to do, never a server error
        assert response is not None
        assert response.status < 500
        assert page.get_attribute(".message", "data-state") == state
        assert says in _text(page, ".message")
        page.screenshot(path=stack.shots / f"dead-{state}.png", full_page=True)
    context.close()
    row = stack.harness.order_row(lapsing_id)
    assert row.link_status == "EXPIRED"
    assert now() > row.link_expires_at
