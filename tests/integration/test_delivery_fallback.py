"""Delivery reports through the real worker and relay on PostgreSQL and RabbitMQ: the
local outbox reports its deliveries, and a bounced email goes out by SMS exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from messages import commands as c
from workers.devtools.commands import configure_store, create_order
from workers.devtools.harness import Harness, now
from workers.storage import tables as t

pytestmark = pytest.mark.integration

EMAIL = "karin.lindqvist@example.se"
PHONE = "+46701234599"


def _report(order_id: uuid.UUID, link_id: str, **kw: Any) -> c.RecordLinkDelivery:
    data: dict[str, Any] = {
        "channel": "email",
        "provider": "sendgrid",
        "outcome": "failed",
        "reason": "bounce 550 5.1.1 user unknown",
        **kw,
    }
    return c.RecordLinkDelivery(
        command_id=uuid.uuid4(), issued_at=now(), order_id=order_id, link_id=link_id, **data
    )


def _processed(h: Harness, *commands: c.CommandBase) -> bool:
    ids = [cmd.command_id for cmd in commands]
    with h.engine.connect() as conn:
        query = select(func.count()).where(t.processed_commands.c.command_id.in_(ids))
        return conn.execute(query).scalar_one() == len(ids)


def test_bounced_email_is_sent_by_sms_once(harness_factory: Any) -> None:
    # Given the service, with the local outbox reporting deliveries, and a store with
    # the SMS fallback whose order has an email and a phone
    h: Harness = harness_factory(PAYLINK_LOCAL_OUTBOX_REPORTS="true")
    h.start_all()
    store = configure_store(sms_fallback=True)
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    order = create_order(customer={"email": EMAIL, "phone": PHONE})
    h.publish(order)
    email_link = h.wait_event("link.sent", order_id=order.order_id)["link_id"]
    # the local outbox said the email was delivered
    delivered = h.wait_event("link.delivered", order_id=order.order_id)
    assert (delivered["link_id"], delivered["provider"]) == (email_link, "local")

    # When SendGrid reports a bounce of the email
    bounce = _report(order.order_id, email_link)
    h.publish(bounce)

    # Then link.bounced, and a new link goes out by SMS (through the outbox and relay)
    h.wait_event("link.bounced", command_id=bounce.command_id)
    resent = h.wait_event("link.resent", command_id=bounce.command_id)
    sms_link = resent["link_id"]
    h.wait_for(
        lambda: [e for e in h.events_for(type_="link.sent") if e["link_id"] == sms_link],
        what="the SMS link sent",
    )
    assert (h.workdir / "outbox" / f"{sms_link}.json").exists()

    # When the bounce is replayed, the email bounces again (another event), and the SMS
    # fails too
    again = _report(order.order_id, email_link)
    sms_failed = _report(
        order.order_id, sms_link, channel="sms", provider="twilio", reason="undelivered 30003"
    )
    h.publish(bounce)
    h.publish(again)
    h.publish(sms_failed)
    h.wait_event("link.undelivered", command_id=sms_failed.command_id)
    h.wait_for(lambda: _processed(h, again, sms_failed), what="the later reports processed")

    # Then nothing more was ever sent: one email and one SMS
    files = sorted(p.name for p in (h.workdir / "outbox").iterdir() if not p.name.startswith("."))
    assert files == sorted([f"{email_link}.eml", f"{sms_link}.json"])
    sent = {e["event_id"] for e in h.events_for(type_="link.sent", order_id=order.order_id)}
    assert len(sent) == 2
    bounced = {e["event_id"] for e in h.events_for(type_="link.bounced", order_id=order.order_id)}
    assert len(bounced) == 1
    assert h.events_for(command_id=again.command_id) == []
