"""`paylink orders show` tells what the providers reported: delivered, bounced, the
fallback by SMS, with the provider's reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from messages import commands as c
from messages import events as ev
from tests.ops.support import Cli, make_shop
from workers.devtools.commands import configure_store, create_order

REASON = "bounce 550 5.1.1 user unknown"


def test_show_lists_delivered_and_bounced_with_the_reason_and_the_sms_fallback(
    cli: Cli, database: str, tmp_path: Path
) -> None:
    # Given an email link delivered, then bounced, at a store with the SMS fallback
    shop = make_shop(database, tmp_path / "outbox")
    shop.ok(configure_store(sms_fallback=True))
    order_id = uuid.uuid4()
    shop.ok(create_order(order_id, customer={"email": "anna@example.com", "phone": "+46701234567"}))
    shop.deliver(order_id)
    (sent,) = shop.outcomes[-1].events
    assert isinstance(sent, ev.LinkSent)
    link_id = sent.link_id
    for outcome, reason in (("delivered", None), ("failed", REASON)):
        shop.ok(
            c.RecordLinkDelivery(
                command_id=uuid.uuid4(),
                issued_at=datetime.now(UTC),
                order_id=order_id,
                link_id=link_id,
                channel="email",
                provider="sendgrid",
                outcome=outcome,
                reason=reason,
            )
        )
    shop.deliver(order_id)  # the SMS
    shop.app.engine.dispose()
    # When the operator looks at the order
    result = cli("orders", "show", str(order_id))
    # Then the timeline says delivered, bounced (with the reason), resent and sent by SMS
    assert result.exit_code == 0, result.output
    timeline = result.stdout[result.stdout.index("Timeline") :]
    events = ["link.sent", "link.delivered", "link.bounced", "link.resent", "link.sent"]
    start = 0
    for event in events:  # each after the one before it
        start = timeline.index(event, start) + 1
    assert REASON in timeline
    assert "channel=sms" in timeline
    notifications = result.stdout[
        result.stdout.index("Notifications") : result.stdout.index("Timeline")
    ]
    assert f"failed {REASON}" in notifications
