"""Every command end to end: RabbitMQ in, PostgreSQL state, events out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from messages import commands as c
from messages.routing import ALL_QUEUES, DEAD_LETTER_REASON_HEADER, ROUTES
from workers.devtools.commands import (
    ORDER_AMOUNT,
    completed,
    configure_store,
    create_order,
    merchant,
    opened,
)
from workers.devtools.harness import Harness, token_from_outbox
from workers.runtime.checkout_proof import sign

pytestmark = pytest.mark.integration


def _configure(h: Harness) -> None:
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)


def _create_and_send(h: Harness, **kw) -> tuple[uuid.UUID, str]:  # type: ignore[no-untyped-def]
    cmd = create_order(**kw)
    h.publish(cmd)
    h.wait_event("order.created", command_id=cmd.command_id)
    sent = h.wait_event("link.sent", order_id=cmd.order_id)
    return cmd.order_id, token_from_outbox(h.workdir / "outbox", sent["link_id"])


def test_every_command_end_to_end(harness: Harness) -> None:
    h = harness
    h.start_all()
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)

    # email order: open, complete, capture part, capture rest, refund part, refund rest
    order_id, token = _create_and_send(h)
    h.publish(opened(token))
    h.wait_event("link.opened", order_id=order_id)
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=order_id)
    for cmd in (
        merchant(c.UpdateCustomerDetails, order_id, name="Anna Svensson"),
        merchant(
            c.UpdateOrderLines,
            order_id,
            order_lines=[
                {
                    "name": "Running shoe",
                    "reference": "SHOE-42",
                    "quantity": 2,
                    "unit_price": 50_000,
                    "tax_rate": 2500,
                },
            ],
        ),
        merchant(c.CapturePayment, order_id, amount=60_000),
        merchant(c.CapturePayment, order_id),
        merchant(c.RefundPayment, order_id, amount=10_000),
        merchant(c.RefundPayment, order_id),
    ):
        h.publish(cmd)
        event = h.wait_for(lambda cmd=cmd: h.events_for(cmd.command_id), what=type(cmd).__name__)[0]
        assert event["type"] != "order.rejected", event
    row = h.order_row(order_id)
    assert row.status == "REFUNDED"
    assert row.order_amount == 100_000

    # SMS order, auto-capture (every line captured), then returned with a fee withheld
    sms_id, sms_token = _create_and_send(h, email=None, phone="+46701234567", auto_capture=True)
    h.publish(completed(sms_token))
    captured = h.wait_event("payment.captured", order_id=sms_id)
    assert captured["auto_capture"] is True
    assert sum(line["amount"] for line in captured["order_lines"]) == ORDER_AMOUNT
    fee = merchant(c.AddReturnFee, sms_id, amount=4_900, tax_rate=2500, refund_amount=ORDER_AMOUNT)
    h.publish(fee)
    refunded = h.wait_event("payment.refunded", command_id=fee.command_id)
    assert (
        refunded["amount"],
        refunded["return_fee_amount"],
        refunded["refunded_to_customer"],
    ) == (
        ORDER_AMOUNT,
        4_900,
        ORDER_AMOUNT - 4_900,
    )
    assert h.wait_event("order.return_fee_added", command_id=fee.command_id)["amount"] == 4_900
    assert h.order_row(sms_id).status == "REFUNDED"

    # authorized then cancelled; part-captured then released; link cancelled before checkout
    a_id, a_token = _create_and_send(h)
    h.publish(completed(a_token))
    h.wait_event("order.completed", order_id=a_id)
    h.publish(merchant(c.CancelOrder, a_id))
    assert h.wait_event("order.cancelled", order_id=a_id)["stage"] == "payment"

    r_id, r_token = _create_and_send(h)
    h.publish(completed(r_token))
    h.wait_event("order.completed", order_id=r_id)
    h.publish(merchant(c.CapturePayment, r_id, amount=5_000))
    h.wait_event("payment.captured", order_id=r_id)
    h.publish(merchant(c.ReleaseRemainingAuthorization, r_id))
    assert h.wait_event("payment.released", order_id=r_id)["amount"] == ORDER_AMOUNT - 5_000
    assert h.order_row(r_id).status == "CAPTURED"

    l_id, l_token = _create_and_send(h)
    resend = merchant(c.ResendPaymentLink, l_id)
    h.publish(resend)
    h.wait_event("link.resent", command_id=resend.command_id)
    stale = opened(l_token)
    h.publish(stale)
    assert h.wait_event("order.rejected", command_id=stale.command_id)["code"] == "LINK_SUPERSEDED"
    h.publish(merchant(c.CancelOrder, l_id))
    assert h.wait_event("order.cancelled", order_id=l_id)["stage"] == "link"


def test_duplicate_command_id_replays_and_a_changed_payload_is_refused(harness: Harness) -> None:
    h = harness
    h.start_all()
    _configure(h)
    order_id, token = _create_and_send(h)
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=order_id)
    capture = merchant(c.CapturePayment, order_id, amount=1_000)
    h.publish(capture)
    first = h.wait_event("payment.captured", command_id=capture.command_id)

    # the same command again: no second effect, its first outcome re-published
    h.publish(capture)
    h.wait_for(lambda: len(h.events_for(capture.command_id)) == 2, what="re-published outcome")
    assert h.events_for(capture.command_id)[1]["event_id"] == first["event_id"]

    # the same id with another payload: refused with its own code
    h.publish(capture.model_copy(update={"amount": 2_000}))
    rejected = h.wait_event("order.rejected", command_id=capture.command_id)
    assert rejected["code"] == "DUPLICATE_COMMAND_CONFLICT"
    assert [e.amount for e in h.ledger(order_id) if e.kind == "capture"] == [1_000]


def test_invalid_command_with_an_id_is_rejected_with_its_fields(harness: Harness) -> None:
    h = harness
    h.start_all()
    cid = uuid.uuid4()
    body = (
        f'{{"queue_name":"paylink.order-management","actor_name":"capture_payment","args":[{{"command_id":"{cid}","amount":"lots"}}],"kwargs":{{}},"options":{{}},"message_id":"m1","message_timestamp":0}}'
    ).encode()
    h.publish_raw("paylink.order-management", body)
    rejected = h.wait_event("order.rejected", command_id=cid)
    assert rejected["code"] == "VALIDATION_FAILED"
    assert "amount" in rejected["message"]


def test_malformed_messages_in_every_queue_are_dead_lettered_with_reason(harness: Harness) -> None:
    h = harness
    h.start_all()
    for queue in ALL_QUEUES:
        h.publish_raw(queue, b"\x00 this is not json {")
        actor = next(r.actor_name for r in ROUTES if r.queue_name == queue)
        envelope = {
            "queue_name": queue,
            "actor_name": actor,
            "args": [{"no": "command id"}],
            "kwargs": {},
            "options": {},
            "message_id": "m-1",
            "message_timestamp": 0,
        }
        h.publish_raw(queue, json.dumps(envelope).encode())
    for queue in ALL_QUEUES:
        h.wait_for(lambda q=queue: h.queue_depth(f"{q}.XQ") >= 2, what=f"{queue}.XQ to hold 2")
        reasons = []
        for _ in range(2):
            props, _body = h.get_dead_letter(queue)
            reasons.append(props.headers[DEAD_LETTER_REASON_HEADER])
        assert any(r.startswith("MALFORMED_MESSAGE") for r in reasons), reasons
        assert any(r.startswith("VALIDATION_FAILED") for r in reasons), reasons
    # the worker is still serving
    _configure(h)


def test_captured_money_stays_refundable_after_the_reservation_expires_over_the_wire(
    harness_factory: Callable[..., Harness],
) -> None:
    # Given: reservations that last 3 seconds, and an order part captured by line
    h = harness_factory(PAYLINK_RESERVATION_TTL_SECONDS="3")
    h.start_all()
    _configure(h)
    order_id, token = _create_and_send(h)
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=order_id)
    sock = {
        "name": "Socks",
        "reference": "SOCK-1",
        "quantity": 1,
        "unit_price": 10_000,
        "tax_rate": 2500,
    }
    capture = merchant(c.CapturePayment, order_id, order_lines=[sock])
    h.publish(capture)
    assert h.wait_event("payment.captured", command_id=capture.command_id)["amount"] == 10_000
    # When: the scheduler expires the reservation
    expired = h.wait_event("payment.expired", order_id=order_id)
    # Then: only the uncaptured rest was released; the capture can still be refunded
    assert expired["released_amount"] == ORDER_AMOUNT - 10_000
    assert h.order_row(order_id).status == "CAPTURED"
    refund = merchant(c.RefundPayment, order_id, amount=5_000)
    h.publish(refund)
    refunded = h.wait_event("payment.refunded", command_id=refund.command_id)
    assert (refunded["amount"], refunded["payment_status"]) == (5_000, "PART_REFUNDED")


def test_a_worker_that_requires_proofs_refuses_a_forged_checkout_and_takes_a_signed_one(
    harness_factory: Callable[..., Harness],
) -> None:
    # Given workers that require the checkout's proof, and a live link
    key = ("k1", b"shared by the link page and the workers")
    h = harness_factory(
        PAYLINK_CHECKOUT_PROOF_KEYS=f"{key[0]}:{key[1].decode()}",
        PAYLINK_CHECKOUT_PROOF_REQUIRED="true",
    )
    h.start_all()
    _configure(h)
    order_id, token = _create_and_send(h)
    # When someone holding the token reports a payment without the checkout's proof
    forged = completed(token)
    h.publish(forged)
    # Then it is refused, and the order is still waiting for its payment
    refused = h.wait_event("order.rejected", command_id=forged.command_id)
    assert refused["code"] == "CHECKOUT_PROOF_INVALID"
    assert h.order_row(order_id).link_status == "CREATED"
    # When the checkout reports it, signed
    signed = sign(completed(token), *key, datetime.now(UTC))
    h.publish(signed)
    # Then the order is completed
    assert h.wait_event("order.completed", command_id=signed.command_id)["order_id"] == str(
        order_id
    )
