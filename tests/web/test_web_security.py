"""The page's defenses: headers, the pay form's CSRF check, the rate limit, the log."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from messages import commands as c
from tests.web.support import Page, csrf_field
from workers.web.security import CsrfSigner


def test_every_answer_carries_the_strict_headers(page: Page) -> None:
    # Given a live link, a dead one and a path that is nothing
    _, live = page.shop.order()

    # When each is fetched
    answers = [
        page.client.get(f"/l/{live}"),
        page.client.get(f"/l/{'n' * 43}"),
        page.client.get("/nothing-here"),
        page.client.get("/static/page.css"),
    ]

    # Then every answer forbids framing, referrers, sniffing, caching and other origins
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "form-action 'self'" in csp
        assert not re.search(r"https?:|\*", csp), "no third-party origin is allowed"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert "server" not in answer.headers


def test_the_csrf_cookie_is_http_only_and_never_sent_with_another_sites_post(
    page: Page,
) -> None:
    # Given a live link
    _, token = page.shop.order()

    # When it is opened
    cookie = page.client.get(f"/l/{token}").headers["set-cookie"]

    # Then the cookie behind the form field is out of scripts' and other sites' reach
    assert cookie.startswith(f"{CsrfSigner.COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/l/" in cookie


def test_a_pay_form_without_the_cookie_is_refused_and_nothing_is_paid(page: Page) -> None:
    # Given a form field read from the page, posted by another site (no cookie)
    order_id, token = page.shop.order()
    field = csrf_field(page.client.get(f"/l/{token}").text)
    page.client.cookies.clear()

    # When it is posted
    response = page.client.post(f"/l/{token}/pay", data={"csrf": field, "outcome": "approve"})

    # Then it is refused and the order is not completed
    assert response.status_code == 403
    assert page.publisher.of(c.CheckoutCompleted) == []
    assert page.shop.row(order_id).link_status != "COMPLETED"


@pytest.mark.parametrize("field", ["", "forged", None])
def test_a_pay_form_with_a_missing_or_forged_field_is_refused(
    page: Page, field: str | None
) -> None:
    # Given a customer with the page's cookie
    _, token = page.shop.order()
    page.client.get(f"/l/{token}")

    # When a form without the right field is posted
    data = {"outcome": "approve"} | ({} if field is None else {"csrf": field})
    response = page.client.post(f"/l/{token}/pay", data=data)

    # Then it is refused
    assert response.status_code == 403
    assert page.publisher.of(c.CheckoutCompleted) == []


def test_the_csrf_field_of_one_link_does_not_pay_another(page: Page) -> None:
    # Given the same customer (one cookie) with two orders' pages
    _, first = page.shop.order()
    second_id, second = page.shop.order()
    field_of_first = csrf_field(page.client.get(f"/l/{first}").text)
    page.client.get(f"/l/{second}")

    # When the first page's field is posted to the second link
    response = page.client.post(
        f"/l/{second}/pay", data={"csrf": field_of_first, "outcome": "approve"}
    )

    # Then it is refused
    assert response.status_code == 403
    assert page.shop.row(second_id).link_status != "COMPLETED"


def test_token_lookups_are_rate_limited_per_client_and_recover(
    page_factory: Callable[..., Page],
) -> None:
    # Given a page allowing 3 lookups a minute
    page = page_factory(rate_limit=3)
    _, token = page.shop.order()

    # When one client makes 4 lookups (guessing tokens), then waits a minute
    answers = [page.client.get(f"/l/{'g' * 42}{i}").status_code for i in range(3)]
    limited = page.client.get(f"/l/{token}")
    page.clock_seconds[0] += 60.0
    after = page.client.get(f"/l/{token}")

    # Then the fourth is refused with a retry time, and the limit recovers
    assert answers == [404, 404, 404]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert 'data-state="busy"' in limited.text
    assert REGISTRY.get_sample_value("paylink_web_rate_limited_total") >= 1
    assert after.status_code == 200


def test_the_access_log_names_the_route_never_the_token(
    page: Page, server_log: io.StringIO
) -> None:
    # Given paylink's logging writing JSON lines to a buffer, and a live link
    _, token = page.shop.order()

    # When the customer opens, pays, and views the receipt
    page.pay(token)
    page.client.get(f"/l/{token}/receipt")

    # Then every request was logged by its route, and the token is in no line
    # (the test client's own "HTTP Request: GET <url>" lines are the browser's side)
    lines = [
        json.loads(line)
        for line in server_log.getvalue().splitlines()
        if not json.loads(line)["logger"].startswith("httpx")
    ]
    routes = [line["route"] for line in lines if line["event"] == "request"]
    assert routes == ["/l/{token}", "/l/{token}/pay", "/l/{token}/receipt"]
    assert all(token not in json.dumps(line) for line in lines)
