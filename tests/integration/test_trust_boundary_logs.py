"""Retried failures on the real services leave no token or customer datum in the logs.

Dramatiq logs "Failed to process message" on every retried failure, with the message
and the traceback; providers quote the recipient and the link back; a database error
quotes the row. Each scenario below makes such a failure happen in a real worker, then
scans everything the processes wrote (``tests.log_scan``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import pika
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from messages.routing import DEAD_LETTER_REASON_HEADER, Queue
from tests.log_scan import Needles, assert_no_leaks
from workers.devtools.commands import configure_store, create_order
from workers.devtools.harness import Harness

pytestmark = pytest.mark.integration

EMAIL = "jörg.müller@exämple.de"
PHONE = "+46701234567"
NAME = "Jörg Müller"
ACCOUNT_SID = "AC00000000000000000000000000000001"
FAILED = "Failed to process message"


def _echoing_503(request: Request) -> Response:
    """A provider that fails and quotes back what it was sent: recipient and link."""
    sent = request.get_data(as_text=True)
    return Response(
        json.dumps({"errors": [{"message": f"Service unavailable for: {sent[:3000]}"}]}),
        status=503,
        content_type="application/json",
    )


def _tokens(requests: list[str]) -> tuple[str, ...]:
    found = {m for body in requests for m in re.findall(r"/l/([A-Za-z0-9_\-]{40,})", body)}
    return tuple(sorted(found))


def _configure(h: Harness) -> None:
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)


def _dead_letters(h: Harness, queue: str) -> list[tuple[str, str]]:
    """(reason, body) of every dead letter of ``queue``, drained."""
    found = []
    with pika.BlockingConnection(pika.URLParameters(h.broker_url)) as conn:
        channel = conn.channel()
        while True:
            method, props, body = channel.basic_get(f"{queue}.XQ", auto_ack=True)
            if method is None:
                return found
            reason = (props.headers or {}).get(DEAD_LETTER_REASON_HEADER, "")
            found.append((str(reason), body.decode()))


def test_a_provider_503_leaves_no_token_email_phone_or_name_in_the_logs(
    harness_factory: Any, httpserver: HTTPServer
) -> None:
    # Given SendGrid and Twilio answering 503 and quoting back what they were sent
    bodies: list[str] = []

    def provider(request: Request) -> Response:
        bodies.append(unquote(request.get_data(as_text=True)))  # Twilio's is a form
        return _echoing_503(request)

    httpserver.expect_request(re.compile(".*")).respond_with_handler(provider)
    base = httpserver.url_for("").rstrip("/")
    h = harness_factory(
        PAYLINK_EMAIL_PROVIDER="sendgrid",
        SENDGRID_API_KEY="SG.test-key.0123456789",
        SENDGRID_BASE_URL=base,
        PAYLINK_SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN="twilio-test-token",
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_BASE_URL=base,
        PAYLINK_MAX_RETRIES="1",
    )
    h.start_all()
    _configure(h)

    # When an email and an SMS order are created and their links fail to send
    h.publish(_order(email=EMAIL))
    h.publish(_order(phone=PHONE))
    h.wait_for(lambda: h.logs().count(f"{FAILED} send_payment_link") >= 2, what="failed sends")
    h.wait_for(lambda: h.queue_depth(f"{Queue.SEND_LINK}.XQ") >= 2, what="sends dead-lettered")

    # Then the provider saw the customers and the links, and the logs hold none of them
    tokens = _tokens(bodies)
    assert len(tokens) == 2
    assert any(PHONE in body for body in bodies)
    needles = Needles(tokens=tokens, emails=(EMAIL,), phones=(PHONE,), names=(NAME,))
    assert "sendgrid answered 503" in h.logs()
    assert_no_leaks(h.logs(), needles)
    # nor do the dead letters: no token, a redacted traceback, the reason in the header
    dead = _dead_letters(h, Queue.SEND_LINK)
    assert len(dead) == 2
    for reason, body in dead:
        assert reason.startswith("FAILED: link token removed, resend the link; DeliveryDeferred")
        assert "token" not in json.loads(body)["args"][0]
        assert "Traceback" in json.loads(body)["options"]["traceback"]
    assert_no_leaks(str(dead), needles)


def test_a_database_error_leaves_no_email_phone_or_name_in_the_logs(harness: Harness) -> None:
    # Given a database that refuses every new order, quoting the row it refused
    h = harness
    engine = create_engine(h.database_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE orders ADD CONSTRAINT refuse_all CHECK (false) NOT VALID"))
    engine.dispose()
    h.start_all()
    _configure(h)

    # When an email and an SMS order are created and fail in the database
    h.publish(_order(email=EMAIL))
    h.publish(_order(phone=PHONE))
    h.wait_for(lambda: h.logs().count(f"{FAILED} create_order") >= 2, what="failed creates")

    # Then the error is logged, and none of the customers' data with it
    logs = h.logs()
    assert "refuse_all" in logs
    assert_no_leaks(logs, Needles(emails=(EMAIL,), phones=(PHONE,), names=(NAME,)))


def _order(*, email: str | None = None, phone: str | None = None) -> Any:
    command = create_order(email=email, phone=phone)
    customer = {**command.customer.model_dump(exclude_none=True), "name": NAME}
    return command.model_copy(update={"customer": type(command.customer)(**customer)})


def test_an_order_id_is_what_the_logs_name_instead(harness: Harness) -> None:
    # Given a worker, when a valid order is created
    h = harness
    h.start_all()
    _configure(h)
    command = _order(email=EMAIL)
    h.publish(command)
    h.wait_event("link.sent", order_id=command.order_id)

    # Then its lines name it by order and command id, never by its customer
    logs = h.logs()
    assert str(command.order_id) in logs
    assert str(command.command_id) in logs
    assert_no_leaks(logs, Needles(emails=(EMAIL,), names=(NAME,)))
