"""Paying through the sandbox gateway: approve completes the order, nothing else does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from messages import commands as c
from tests.web.support import Page, csrf_field
from tests.web.test_web_link_page import text_of
from workers.devtools.commands import ORDER_AMOUNT
from workers.runtime.checkout_proof import HmacCheckoutProofs
from workers.web.app import completed_command_id
from workers.web.gateway import (
    Approved,
    AuthorizationRequest,
    Declined,
    GatewayUnavailable,
    SandboxGateway,
)


def test_an_approved_payment_completes_the_order_and_shows_the_receipt(page: Page) -> None:
    # Given a customer on a live link
    order_id, token = page.shop.order()

    # When they pay with the sandbox's approve outcome
    response = page.pay(token, "approve")

    # Then the order is completed and authorized for its amount, by a command from the page
    assert response.status_code == 303
    assert response.headers["location"] == f"/l/{token}/receipt"
    row = page.shop.row(order_id)
    assert (row.link_status, row.status) == ("COMPLETED", "AUTHORIZED")
    assert row.authorization_id.startswith("sbx_")
    (completed,) = page.publisher.of(c.CheckoutCompleted)
    assert completed.command_id == completed_command_id(row.current_link_id)
    assert (completed.authorized_amount, completed.currency) == (ORDER_AMOUNT, "SEK")
    assert completed.payment_method == "sandbox"
    receipt = page.client.get(response.headers["location"])
    assert 'data-state="paid"' in receipt.text


def test_an_auto_capture_order_is_captured_when_paid(page: Page) -> None:
    # Given an order created with auto-capture
    order_id, token = page.shop.order(auto_capture=True)

    # When the customer pays
    page.pay(token, "approve")

    # Then the whole amount is captured
    assert page.shop.row(order_id).status == "CAPTURED"


def test_a_double_submitted_payment_is_one_command_and_one_authorization(page: Page) -> None:
    # Given a customer who opened the page once (one form, one CSRF field)
    order_id, token = page.shop.order()
    form = {"csrf": csrf_field(page.client.get(f"/l/{token}").text), "outcome": "approve"}

    # When the form is submitted twice
    first = page.client.post(f"/l/{token}/pay", data=form, follow_redirects=False)
    second = page.client.post(f"/l/{token}/pay", data=form, follow_redirects=False)

    # Then one command was published, and the second submit shows the paid page
    assert first.status_code == 303
    assert 'data-state="paid"' in second.text
    assert len(page.publisher.of(c.CheckoutCompleted)) == 1
    assert page.shop.row(order_id).status == "AUTHORIZED"


def test_a_payment_the_worker_has_not_applied_yet_shows_a_confirming_receipt(
    page_factory: Callable[..., Page],
) -> None:
    # Given a broker that holds the payment (the worker has not applied it yet)
    page = page_factory(hold=True)
    order_id, token = page.shop.order()

    # When the customer pays and lands on the receipt
    receipt = page.client.get(page.pay(token).headers["location"])

    # Then the receipt says the payment is being confirmed and reloads itself
    assert receipt.status_code == 200
    assert 'data-state="confirming"' in receipt.text
    assert '<meta http-equiv="refresh" content="2">' in receipt.text
    assert page.shop.row(order_id).link_status == "CREATED"


def test_a_declined_payment_publishes_nothing_and_lets_the_customer_retry(page: Page) -> None:
    # Given a customer on a live link
    order_id, token = page.shop.order()
    declines = _payments("declined")

    # When the sandbox declines
    response = page.pay(token, "decline")

    # Then the page says so with the form again, and the order is untouched
    assert response.status_code == 402
    assert "Betalningen nekades. Inget har dragits." in text_of(response.text)
    assert 'id="pay"' in response.text
    assert page.publisher.of(c.CheckoutCompleted) == []
    assert page.shop.row(order_id).link_status == "IN_PROGRESS"
    assert _payments("declined") == declines + 1


def _payments(outcome: str) -> float:
    """paylink_web_payments_total{outcome} as the health port's /metrics serves it."""
    value = REGISTRY.get_sample_value("paylink_web_payments_total", {"outcome": outcome})
    return value or 0.0


def test_a_gateway_error_publishes_nothing_and_says_nothing_was_charged(page: Page) -> None:
    # Given a customer on a live link
    _order_id, token = page.shop.order()

    # When the sandbox's provider fails to answer
    response = page.pay(token, "error")

    # Then the customer is told to try again; nothing was reported
    assert response.status_code == 503
    assert "Betalleverantören svarade inte" in text_of(response.text)
    assert page.publisher.of(c.CheckoutCompleted) == []


def test_an_approved_payment_the_broker_refuses_asks_to_retry_and_retrying_pays_once(
    page: Page,
) -> None:
    # Given a customer on a live link, and a broker that is down
    order_id, token = page.shop.order()
    page.client.get(f"/l/{token}")
    page.publisher.broker_down = True

    # When they pay (approved, but not reported), then pay again once the broker is back
    failed = page.pay(token)
    page.publisher.broker_down = False
    retried = page.pay(token)

    # Then the first attempt asked to retry, and the retry completed the order once
    assert failed.status_code == 503
    assert retried.status_code == 303
    assert len(page.publisher.of(c.CheckoutCompleted)) == 1
    assert page.shop.row(order_id).status == "AUTHORIZED"


def test_the_sandbox_answers_each_documented_outcome() -> None:
    # Given the sandbox and one link's payment
    gateway = SandboxGateway()

    def ask(outcome: str, key: str = "link-1") -> AuthorizationRequest:
        return AuthorizationRequest(
            key, uuid.uuid4(), 100, "SEK", "PO-1", method_data={"outcome": outcome}
        )

    # When each outcome is asked for
    approved = gateway.authorize(ask("approve"))
    again = gateway.authorize(ask("approve"))
    other = gateway.authorize(ask("approve", key="link-2"))
    declined = gateway.authorize(ask("decline"))
    unknown = gateway.authorize(ask("steal"))

    # Then approve is idempotent per link, decline and unknown are declines, error raises
    assert isinstance(approved, Approved)
    assert approved == again != other
    assert isinstance(declined, Declined)
    assert isinstance(unknown, Declined)
    with pytest.raises(GatewayUnavailable):
        gateway.authorize(ask("error"))


def test_a_worker_that_requires_proofs_completes_the_pages_signed_report(
    page_factory: Callable[..., Page],
) -> None:
    # Given workers that refuse unproven reports, and a page holding the shared key
    key = ("k1", b"shared by the page and the workers")
    page = page_factory(proof_key=key)
    shop = page.shop
    shop.ctx = dataclasses.replace(
        shop.ctx,
        checkout_proofs=HmacCheckoutProofs(dict([key]), required=True, clock=shop.clock.now),
    )
    order_id, token = shop.order()
    # When the customer pays
    page.pay(token, "approve")
    # Then the page's report carried its proof and the order is completed
    (completed,) = page.publisher.of(c.CheckoutCompleted)
    assert completed.proof is not None
    assert completed.proof.key_id == "k1"
    assert shop.row(order_id).link_status == "COMPLETED"
