"""Customer notifications through the real pipeline: crash window and privacy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from messages import commands as c
from tests.integration.test_pipeline import _create_and_send
from workers.devtools.commands import completed, configure_store, create_order, merchant
from workers.devtools.harness import Harness
from workers.storage import tables as t

pytestmark = pytest.mark.integration

EMAIL = "karin.lindqvist@example.se"
PHONE = "+46701234599"


def test_crash_after_provider_accepted_finds_the_message_and_sends_nothing_more(
    harness: Harness,
) -> None:
    """A worker that dies after the provider accepted the message but before the commit
    leaves the notification ATTEMPTING. The redelivered command counts the attempt as
    uncertain and asks the provider first: the local outbox already holds the message
    (its file), so that receipt is recorded and the file is not written again.
    link.sent is published once."""
    h = harness
    marker = h.workdir / "kill-after-send"
    h.env_overrides["PAYLINK_TEST_KILL_MARKER"] = str(marker)
    worker = h.start_worker(module="tests.integration.crash_after_send_worker")
    h.start_relay()
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    marker.touch()
    order = create_order(email=EMAIL)
    h.publish(order)
    h.wait_for(lambda: not marker.exists(), what="the kill after the provider call")
    worker.stop()
    (delivered,) = (h.workdir / "outbox").glob("*.eml")
    first_write = delivered.stat()
    h.start_worker()
    sent = h.wait_event("link.sent", order_id=order.order_id)
    with h.engine.connect() as conn:
        note = conn.execute(
            select(t.notifications).where(t.notifications.c.order_id == order.order_id)
        ).one()
    assert (note.state, note.attempts) == ("sent", 2)
    assert (note.uncertain_attempts, note.blind_resends) == (1, 0)
    assert len(h.events_for(type_="link.sent", order_id=order.order_id)) == 1
    assert delivered.name == f"{sent['link_id']}.eml" == sent["provider_message_id"]
    again = delivered.stat()  # renamed into place once: the same inode, never rewritten
    assert (again.st_ino, again.st_mtime_ns) == (first_write.st_ino, first_write.st_mtime_ns)


def test_logs_of_a_full_lifecycle_hold_no_customer_email_or_phone(harness: Harness) -> None:

    h = harness
    h.start_all()
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    for contact in ({"email": EMAIL}, {"email": None, "phone": PHONE}):
        order_id, token = _create_and_send(h, **contact)
        h.publish(completed(token))
        h.wait_event("order.completed", order_id=order_id)
        h.publish(merchant(c.UpdateCustomerDetails, order_id, email="new." + EMAIL))
        h.wait_event("order.customer_updated", order_id=order_id)
        h.publish(merchant(c.CapturePayment, order_id))
        h.wait_event("payment.captured", order_id=order_id)
        h.publish(merchant(c.RefundPayment, order_id))
        h.wait_event("payment.refunded", order_id=order_id)
    logs = h.logs()
    assert "command processed" in logs
    for secret in (EMAIL, PHONE, PHONE[1:], "new." + EMAIL):
        assert secret not in logs
    events = str(h.drain_events())
    assert EMAIL not in events
    assert PHONE not in events
