"""The providers' delivery webhooks, signed with keys the tests make: a good signature
becomes a RecordLinkDelivery the worker applies; a bad or missing one is refused 403
and nothing is published; a replayed report has no second effect."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from messages import commands as c
from messages.routing import ParsedMessage, parse_message
from tests.web.support import SECRET, Shop, WorkerPublisher
from workers.providers.twilio import status_callback_url
from workers.storage import tables as t
from workers.web.app import create_app
from workers.web.gateway import SandboxGateway
from workers.web.hooks import DeliveryHooks

PUBLIC_URL = "https://pay.example.test"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
EMAIL = "anna@example.com"


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_headers(
    key: ec.EllipticCurvePrivateKey, body: bytes, ts: str = "1764930000"
) -> dict[str, str]:
    """As SendGrid signs: ECDSA P-256 / SHA-256 over timestamp + payload, base64 DER."""
    signature = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: ts}


class Hooks:
    def __init__(self, shop: Shop, publisher: WorkerPublisher, client: TestClient) -> None:
        self.shop, self.publisher, self.client = shop, publisher, client

    def sent_order(self, **kw: Any) -> tuple[uuid.UUID, uuid.UUID]:
        """An order whose link went out (its SendPaymentLink applied): order and link ids."""
        order_id, _token = self.shop.order(**kw)
        with self.shop.engine.connect() as conn:
            payload = conn.execute(
                select(t.outbox.c.payload).where(
                    t.outbox.c.order_id == order_id, t.outbox.c.kind == "command"
                )
            ).scalar_one()
        parsed = parse_message(payload)
        assert isinstance(parsed, ParsedMessage)
        assert self.shop.run(parsed.command).status == "accepted"
        return order_id, self.shop.row(order_id).current_link_id

    def reports(self) -> list[c.RecordLinkDelivery]:
        return self.publisher.of(c.RecordLinkDelivery)

    def event_types(self) -> list[str]:
        return [e.type for o in self.publisher.outcomes for e in o.events]


@pytest.fixture
def hooks(shop: Shop, sendgrid_key: ec.EllipticCurvePrivateKey) -> Iterator[Hooks]:
    publisher = WorkerPublisher(shop)
    delivery_hooks = DeliveryHooks(
        publisher,
        shop.clock.now,
        sendgrid_public_key=_public_b64(sendgrid_key),
        twilio_secret=TWILIO_TOKEN,
        public_url=PUBLIC_URL,
    )
    app = create_app(
        shop.engine,
        publisher,
        SandboxGateway(),
        secret=SECRET,
        rate_limit_per_minute=1000,
        now=shop.clock.now,
        hooks=delivery_hooks,
    )
    with TestClient(app, base_url="http://10.0.0.5:8080") as client:
        yield Hooks(shop, publisher, client)


def sendgrid_events(order_id: uuid.UUID, link_id: uuid.UUID, *events: dict[str, Any]) -> bytes:
    base = {
        "email": EMAIL,
        "timestamp": 1764930000,
        "sg_message_id": "W6A3xyz_QyGxkq1f0n7mJA.filter0001.1.0",
        "order_id": str(order_id),
        "notification_id": str(link_id),
    }
    return json.dumps([{**base, **e} for e in events]).encode()


BOUNCE = {
    "event": "bounce",
    "sg_event_id": "ZGVsaXZlcmVkLTAtMjQ",
    "type": "bounce",
    "reason": f"550 5.1.1 <{EMAIL}>: Recipient address rejected: User unknown",
}


def test_a_signed_sendgrid_bounce_becomes_link_bounced_without_the_address(
    hooks: Hooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    # Given a sent email link
    order_id, link_id = hooks.sent_order()
    body = sendgrid_events(order_id, link_id, BOUNCE)
    # When SendGrid posts its signed bounce
    answer = hooks.client.post(
        "/hooks/sendgrid", content=body, headers=sendgrid_headers(sendgrid_key, body)
    )
    # Then the report is published and applied: link.bounced, with the reason masked
    assert answer.status_code == 204
    (report,) = hooks.reports()
    assert (report.order_id, report.link_id, report.outcome) == (order_id, link_id, "failed")
    assert report.reason is not None
    assert "550 5.1.1" in report.reason
    assert EMAIL not in report.reason
    assert hooks.event_types() == ["link.bounced"]


def test_sendgrid_delivered_becomes_link_delivered_and_other_events_are_ignored(
    hooks: Hooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    order_id, link_id = hooks.sent_order()
    body = sendgrid_events(
        order_id,
        link_id,
        {"event": "processed", "sg_event_id": "p-1"},
        {"event": "deferred", "sg_event_id": "d-1", "response": "400 try again later"},
        {"event": "delivered", "sg_event_id": "v-1", "response": "250 OK"},
    )

    answer = hooks.client.post(
        "/hooks/sendgrid", content=body, headers=sendgrid_headers(sendgrid_key, body)
    )

    assert answer.status_code == 204
    assert [r.outcome for r in hooks.reports()] == ["delivered"]
    assert hooks.event_types() == ["link.delivered"]


def _other_key_headers(body: bytes) -> dict[str, str]:
    return sendgrid_headers(ec.generate_private_key(ec.SECP256R1()), body)


@pytest.mark.parametrize(
    "forge",
    [
        lambda key, body: {},
        lambda key, body: {TIMESTAMP: "1764930000"},
        lambda key, body: _other_key_headers(body),
        lambda key, body: {**sendgrid_headers(key, body), TIMESTAMP: "1764930001"},
        lambda key, body: sendgrid_headers(key, body + b" "),
        lambda key, body: {SIGNATURE: "not base64 at all!", TIMESTAMP: "1764930000"},
    ],
    ids=["missing", "no-signature", "other-key", "other-timestamp", "other-body", "garbage"],
)
def test_a_sendgrid_report_without_a_valid_signature_is_refused_and_publishes_nothing(
    hooks: Hooks,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    forge: Callable[[ec.EllipticCurvePrivateKey, bytes], dict[str, str]],
) -> None:
    order_id, link_id = hooks.sent_order()
    body = sendgrid_events(order_id, link_id, BOUNCE)

    answer = hooks.client.post("/hooks/sendgrid", content=body, headers=forge(sendgrid_key, body))

    assert answer.status_code == 403
    assert hooks.reports() == []


def test_a_replayed_sendgrid_event_has_no_second_effect(
    hooks: Hooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    # Given a bounce already reported
    order_id, link_id = hooks.sent_order()
    body = sendgrid_events(order_id, link_id, BOUNCE)
    headers = sendgrid_headers(sendgrid_key, body)
    hooks.client.post("/hooks/sendgrid", content=body, headers=headers)
    # When the very same request comes again (SendGrid retrying, or a replay)
    again = hooks.client.post("/hooks/sendgrid", content=body, headers=headers)
    # Then it is the same command, applied once
    assert again.status_code == 204
    first, second = hooks.reports()
    assert first.command_id == second.command_id
    assert [o.status for o in hooks.publisher.outcomes[-2:]] == ["accepted", "duplicate"]


def twilio_post(hooks: Hooks, url: str, form: dict[str, str], signature: str | None) -> Any:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    path = url.removeprefix(PUBLIC_URL)
    return hooks.client.post(path, data=form, headers=headers)


UNDELIVERED = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "undelivered",
    "ErrorCode": "30003",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
}


def test_a_signed_twilio_callback_becomes_link_undelivered(hooks: Hooks) -> None:
    # Given a link sent by SMS, and its status callback URL
    order_id, link_id = hooks.sent_order(phone="+46701234567")
    url = status_callback_url(PUBLIC_URL, order_id, link_id)
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, UNDELIVERED)
    # When Twilio posts its signed callback
    answer = twilio_post(hooks, url, UNDELIVERED, signature)
    # Then link.undelivered, with Twilio's error code
    assert answer.status_code == 204
    (report,) = hooks.reports()
    assert (report.channel, report.outcome, report.reason) == ("sms", "failed", "undelivered 30003")
    assert hooks.event_types() == ["link.undelivered"]


@pytest.mark.parametrize("forge", ["missing", "other-token", "other-link", "other-status"])
def test_a_twilio_callback_without_a_valid_signature_is_refused_and_publishes_nothing(
    hooks: Hooks, forge: str
) -> None:
    order_id, link_id = hooks.sent_order(phone="+46701234567")
    url = status_callback_url(PUBLIC_URL, order_id, link_id)
    token = "another-auth-token" if forge == "other-token" else TWILIO_TOKEN
    signature: str | None = RequestValidator(token).compute_signature(url, UNDELIVERED)
    form = dict(UNDELIVERED)
    if forge == "missing":
        signature = None
    elif forge == "other-link":
        url = status_callback_url(PUBLIC_URL, order_id, uuid.uuid4())
    elif forge == "other-status":
        form["MessageStatus"] = "delivered"

    answer = twilio_post(hooks, url, form, signature)

    assert answer.status_code == 403
    assert hooks.reports() == []


def test_a_replayed_twilio_callback_has_no_second_effect(hooks: Hooks) -> None:
    order_id, link_id = hooks.sent_order(phone="+46701234567")
    url = status_callback_url(PUBLIC_URL, order_id, link_id)
    delivered = {**UNDELIVERED, "MessageStatus": "delivered"}
    delivered.pop("ErrorCode")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, delivered)

    # When Twilio's callback is posted twice
    twilio_post(hooks, url, delivered, signature)
    twilio_post(hooks, url, delivered, signature)

    # Then the second is a duplicate: the first outcome's events again, the same ids
    first, second = hooks.publisher.outcomes[-2:]
    assert (first.status, second.status) == ("accepted", "duplicate")
    assert [e.event_id for e in second.events] == [e.event_id for e in first.events]


def test_a_twilio_status_on_the_way_publishes_nothing(hooks: Hooks) -> None:
    order_id, link_id = hooks.sent_order(phone="+46701234567")
    url = status_callback_url(PUBLIC_URL, order_id, link_id)
    sent = {**UNDELIVERED, "MessageStatus": "sent"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, sent)

    answer = twilio_post(hooks, url, sent, signature)

    assert answer.status_code == 204
    assert hooks.reports() == []
