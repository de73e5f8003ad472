"""An external checkout: the pay button leads to it, and only its signed, fresh, new
callback completes the order (real HMACs, the page over a real database, the worker's
pipeline applying what the page publishes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from messages import commands as c
from tests.web.support import Page
from tests.web.test_web_link_page import text_of
from workers.devtools.commands import ORDER_AMOUNT
from workers.runtime.checkout_proof import HmacCheckoutProofs
from workers.settings import Settings
from workers.web.app import completed_command_id
from workers.web.callback import REPLAY_WINDOW_SECONDS, sign
from workers.web.gateway import ExternalGateway

SECRET = b"acme-callback-secret"
PROOF_KEY = ("k1", b"shared by the link page and the workers")
CHECKOUT = "https://checkout.acme.example/pay"


@pytest.fixture
def external(page_factory: Callable[..., Page]) -> Page:
    return page_factory(
        gateway=ExternalGateway(CHECKOUT),
        callback_secrets={"acme": [SECRET]},
        proof_key=PROOF_KEY,
    )


def result(token: str, **changes: Any) -> bytes:
    data = {
        "session": token,
        "status": "authorized",
        "authorization_id": "acme_auth_1",
        "amount": ORDER_AMOUNT,
        "currency": "SEK",
        "payment_method": "card",
        **changes,
    }
    return json.dumps(data).encode()


def post(
    page: Page,
    body: bytes,
    *,
    secret: bytes = SECRET,
    gateway: str = "acme",
    age: int = 0,
    headers: dict[str, str] | None = None,
) -> Any:
    """The gateway's callback, signed now (or ``age`` seconds ago) with ``secret``."""
    sent_at = int(page.shop.clock.now().timestamp()) - age
    signed = {"Paylink-Timestamp": str(sent_at), "Paylink-Signature": sign(secret, sent_at, body)}
    return page.client.post(
        f"/checkout/callback/{gateway}",
        content=body,
        headers={"content-type": "application/json", **(signed if headers is None else headers)},
    )


def test_the_pay_button_sends_the_customer_to_the_external_checkout(external: Page) -> None:
    # Given a customer on a live link, and a store paying through an external checkout
    order_id, token = external.shop.order()

    # When they press pay
    response = external.pay(token)

    # Then they are sent there with the amount, the session and the way back; nothing
    # is published yet, and the page lets its form lead there
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CHECKOUT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query == {
        "session": token,
        "amount": str(ORDER_AMOUNT),
        "currency": "SEK",
        "reference": "PO-1001",
        "return_url": f"http://127.0.0.1:8080/l/{token}/receipt",
    }
    assert external.publisher.of(c.CheckoutCompleted) == []
    csp = external.client.get(f"/l/{token}").headers["content-security-policy"]
    assert "form-action 'self' https://checkout.acme.example;" in csp
    assert external.shop.row(order_id).link_status == "IN_PROGRESS"


def test_a_signed_authorized_callback_completes_the_order_with_the_checkouts_proof(
    external: Page,
) -> None:
    # Given a customer who paid on the external checkout
    order_id, token = external.shop.order()

    # When its signed callback arrives
    response = post(external, result(token))

    # Then the order is completed with the gateway's authorization, by the page's command,
    # which carries a proof the workers accept
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    row = external.shop.row(order_id)
    assert (row.link_status, row.status, row.authorization_id) == (
        "COMPLETED",
        "AUTHORIZED",
        "acme_auth_1",
    )
    (completed,) = external.publisher.of(c.CheckoutCompleted)
    assert completed.command_id == completed_command_id(row.current_link_id)
    assert (completed.authorized_amount, completed.payment_method) == (ORDER_AMOUNT, "card")
    proofs = HmacCheckoutProofs(
        {PROOF_KEY[0]: PROOF_KEY[1]}, required=True, clock=external.shop.clock.now
    )
    assert proofs.problem(completed) is None
    receipt = external.client.get(f"/l/{token}/receipt")
    assert 'data-state="paid"' in receipt.text


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("wrong-secret", "SIGNATURE_INVALID"),
        ("body-changed", "SIGNATURE_INVALID"),
        ("unsigned", "SIGNATURE_MISSING"),
        ("unknown-gateway", "GATEWAY_UNKNOWN"),
        ("stale", "TIMESTAMP_OUTSIDE_WINDOW"),
    ],
)
def test_a_callback_not_signed_fresh_by_the_gateway_is_refused_and_publishes_nothing(
    external: Page, how: str, code: str
) -> None:
    # Given a live link
    order_id, token = external.shop.order()
    body = result(token)

    # When a callback arrives that the gateway did not sign, or not lately
    if how == "wrong-secret":
        response = post(external, body, secret=b"a guess")
    elif how == "body-changed":
        sent_at = int(external.shop.clock.now().timestamp())
        forged = result(token, amount=1)
        response = post(
            external,
            forged,
            headers={
                "Paylink-Timestamp": str(sent_at),
                "Paylink-Signature": sign(SECRET, sent_at, body),
            },
        )
    elif how == "unsigned":
        response = post(external, body, headers={})
    elif how == "unknown-gateway":
        response = post(external, body, gateway="other")
    else:
        response = post(external, body, age=REPLAY_WINDOW_SECONDS + 1)

    # Then it is refused with 403, and the order is untouched
    assert (response.status_code, response.json()) == (403, {"error": code})
    assert external.publisher.published == []
    assert external.shop.row(order_id).link_status == "CREATED"


def test_a_replayed_callback_has_no_second_effect(external: Page) -> None:
    # Given a callback that completed an order
    order_id, token = external.shop.order()
    body = result(token)
    sent_at = int(external.shop.clock.now().timestamp())
    headers = {"Paylink-Timestamp": str(sent_at), "Paylink-Signature": sign(SECRET, sent_at, body)}
    assert post(external, body, headers=headers).status_code == 202

    # When the same bytes arrive again, and the gateway retries it signed anew
    replayed = post(external, body, headers=headers)
    external.shop.clock.advance(seconds=1)
    retried = post(external, body)

    # Then neither publishes anything: one command, one authorization
    assert (replayed.status_code, replayed.json()) == (403, {"error": "REPLAYED"})
    assert (retried.status_code, retried.json()) == (409, {"error": "LINK_PAID"})
    assert len(external.publisher.of(c.CheckoutCompleted)) == 1
    assert external.shop.row(order_id).status == "AUTHORIZED"


def test_a_declined_callback_changes_nothing_and_the_page_says_so(external: Page) -> None:
    # Given a customer who was declined on the external checkout
    order_id, token = external.shop.order()

    # When its signed callback arrives, and the customer comes back to the receipt page
    response = post(external, result(token, status="declined", authorization_id=None))
    back = external.client.get(f"/l/{token}/receipt", params={"outcome": "declined"})

    # Then nothing is published, and the page says so with the form again
    assert (response.status_code, response.json()) == (200, {"status": "declined"})
    assert external.publisher.published == []
    assert external.shop.row(order_id).link_status == "CREATED"
    assert back.status_code == 200
    assert "Betalningen nekades. Inget har dragits." in text_of(back.text)
    assert 'id="pay"' in back.text


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"amount": ORDER_AMOUNT - 1}, 409, "AMOUNT_MISMATCH"),
        ({"currency": "EUR"}, 409, "AMOUNT_MISMATCH"),
        ({"authorization_id": None}, 400, "BODY_INVALID"),
        ({"session": "not a token"}, 400, "BODY_INVALID"),
    ],
)
def test_a_signed_callback_that_does_not_fit_the_order_publishes_nothing(
    external: Page, changes: dict[str, Any], status: int, error: str
) -> None:
    order_id, token = external.shop.order()
    response = post(external, result(token, **changes))
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert external.publisher.published == []
    assert external.shop.row(order_id).link_status == "CREATED"


def test_a_callback_for_a_dead_link_publishes_nothing(external: Page) -> None:
    # Given a link replaced by a resend
    order_id, token = external.shop.order()
    external.shop.resend(order_id)
    # When the gateway reports a payment on the old link
    response = post(external, result(token))
    # Then the gateway is told the link is not payable (it voids), nothing is published
    assert (response.status_code, response.json()) == (409, {"error": "LINK_SUPERSEDED"})
    assert external.publisher.published == []


def test_an_unknown_link_in_a_signed_callback_is_answered_like_a_dead_one(external: Page) -> None:
    response = post(external, result(uuid.uuid4().hex + "x" * 10))
    assert (response.status_code, response.json()) == (409, {"error": "LINK_UNKNOWN"})


def test_an_external_gateway_needs_its_https_address() -> None:
    with pytest.raises(ValidationError, match="PAYLINK_EXTERNAL_CHECKOUT_URL"):
        Settings(PAYLINK_CHECKOUT_GATEWAY="external")
    with pytest.raises(ValidationError, match="PAYLINK_EXTERNAL_CHECKOUT_URL"):
        Settings(
            PAYLINK_CHECKOUT_GATEWAY="external",
            PAYLINK_EXTERNAL_CHECKOUT_URL="http://plain.example",
        )


def test_callback_secrets_are_read_per_gateway_in_order_for_rotation() -> None:
    settings = Settings(PAYLINK_CHECKOUT_CALLBACK_SECRETS="acme:new, other:x ,acme:old")
    assert settings.checkout_callback_secret_map == {"acme": [b"new", b"old"], "other": [b"x"]}
