from __future__ import annotations

import uuid
from datetime import UTC, datetime

from domain.bus import handle
from messages import commands as c
from tests.fakes import Database, FakeClock, FakeUnitOfWork, RecordingNotifier, make_context

ACTOR = {"user_id": "u-1", "role": "Admin", "store_ids": ["store-1"]}
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def cmd(cls, **kw):
    return cls(command_id=uuid.uuid4(), issued_at=NOW, **kw)


def test_full_lifecycle_through_the_bus():
    db, clock, notifier = Database(), FakeClock(), RecordingNotifier()
    ctx = make_context(clock, notifier)
    uow = lambda: FakeUnitOfWork(db)  # noqa: E731
    out = handle(
        cmd(
            c.ConfigureStore,
            actor=ACTOR,
            store_id="store-1",
            store_name="Shop",
            terms_url="https://shop.example/terms",
            agreement_currencies=["SEK"],
        ),
        uow,
        ctx,
    )
    assert out.status == "accepted", out
    order_id = uuid.uuid4()
    out = handle(
        cmd(
            c.CreateOrder,
            actor=ACTOR,
            order_id=order_id,
            store_id="store-1",
            customer={"email": "anna@example.com"},
            purchase_country="SE",
            merchant_reference1="R1",
            order_lines=[
                {
                    "name": "Shoe",
                    "reference": "S1",
                    "quantity": 2,
                    "unit_price": 50000,
                    "tax_rate": 2500,
                }
            ],
        ),
        uow,
        ctx,
    )
    assert out.status == "accepted", out
    send = db.commands[-1]
    out = handle(send, uow, ctx)
    assert out.status == "accepted", out
    assert notifier.sent
    assert notifier.sent[0].order_amount == 100000
    token = notifier.sent[0].link_url.rsplit("/", 1)[1]
    assert handle(cmd(c.PaymentLinkOpened, token=token), uow, ctx).status == "accepted"
    out = handle(
        cmd(
            c.CheckoutCompleted,
            token=token,
            authorization_id="auth-1",
            authorized_amount=100000,
            currency="SEK",
        ),
        uow,
        ctx,
    )
    assert out.status == "accepted", out
    out = handle(cmd(c.CapturePayment, actor=ACTOR, order_id=order_id, amount=60000), uow, ctx)
    assert out.status == "accepted", out
    assert db.orders[order_id].status == "PART_CAPTURED"
    out = handle(cmd(c.CapturePayment, actor=ACTOR, order_id=order_id, amount=60000), uow, ctx)
    assert out.code == "CAPTURE_EXCEEDS_REMAINING"
    out = handle(cmd(c.RefundPayment, actor=ACTOR, order_id=order_id), uow, ctx)
    assert out.status == "accepted", out
    assert db.orders[order_id].status == "PART_REFUNDED"
