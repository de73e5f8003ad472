"""Delivery reports (RecordLinkDelivery) in every link state, and the SMS fallback."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.delivery import begin_attempt
from domain.errors import TransientError
from domain.links import Link
from domain.status import LinkStatus
from messages import commands as c
from messages import events as ev
from tests.unit.builders import World

PHONE = "+46701234567"


def _report(world: World, outcome: str = "failed", **fields: Any) -> c.RecordLinkDelivery:
    fields.setdefault("link_id", str(world.link_id))
    fields.setdefault("reason", "550 mailbox unavailable" if outcome == "failed" else None)
    return world.command(c.RecordLinkDelivery, outcome=outcome, **fields)


def _current(world: World) -> Link:
    link = world.order.current_link
    if link is None:
        raise LookupError("the order has no link")
    return link


def _fallback_world(**create: Any) -> World:
    world = World()
    world.configure(sms_fallback=True)
    world.create(customer={"email": "anna@example.com", "phone": PHONE}, **create)
    assert world.deliver().status == "accepted"
    return world


def test_a_delivered_report_is_recorded_and_announced() -> None:
    # Given a sent link
    world = World().sent_order()
    # When SendGrid reports it delivered
    outcome = world.run(_report(world, "delivered"))
    # Then link.delivered names the link, channel and provider; the record keeps it
    assert outcome.status == "accepted"
    (event,) = outcome.events
    assert isinstance(event, ev.LinkDelivered)
    assert (event.link_id, event.channel, event.provider) == (world.link_id, "email", "sendgrid")
    assert world.notification().report == "delivered"


def test_a_bounced_email_is_announced_with_the_providers_reason() -> None:
    world = World().sent_order()

    (event,) = world.run(_report(world)).events

    assert isinstance(event, ev.LinkBounced)
    assert event.reason == "550 mailbox unavailable"
    assert world.notification().report_reason == "550 mailbox unavailable"


def test_an_undelivered_sms_is_link_undelivered() -> None:
    # Given an order reached by SMS only
    world = World().sent_order(customer={"phone": PHONE})
    # When Twilio reports it undelivered
    (event,) = world.run(_report(world, channel="sms", provider="twilio", reason="30003")).events
    # Then
    assert isinstance(event, ev.LinkUndelivered)
    assert (event.channel, event.reason) == ("sms", "30003")


def test_a_replayed_report_has_no_second_effect() -> None:
    world = World().sent_order()
    report = _report(world)
    first = world.run(report)

    again = world.run(report)

    assert again.status == "duplicate"
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]


def test_the_same_outcome_reported_again_by_another_event_changes_nothing() -> None:
    world = World().sent_order()
    world.run(_report(world, "delivered"))

    outcome = world.run(_report(world, "delivered"))

    assert (outcome.status, outcome.events) == ("accepted", [])


def test_a_report_on_an_unknown_link_is_accepted_and_changes_nothing() -> None:
    world = World().sent_order()
    watch = world.watch()

    outcome = world.run(_report(world, link_id=str(uuid.uuid4())))

    assert (outcome.status, outcome.events) == ("accepted", [])
    assert watch.unchanged()


def test_a_report_on_an_unknown_order_is_accepted_and_changes_nothing() -> None:
    world = World().sent_order()

    outcome = world.run(_report(world, order_id=str(uuid.uuid4())))

    assert (outcome.status, outcome.events) == ("accepted", [])


def test_a_report_on_a_superseded_link_is_accepted_and_changes_nothing() -> None:
    # Given a link replaced by a resend
    world = World().sent_order()
    old_link = world.link_id
    world.ok(c.ResendPaymentLink)
    world.deliver()
    watch = world.watch()
    # When the old link's bounce arrives
    outcome = world.run(_report(world, link_id=str(old_link)))
    # Then nothing changes
    assert (outcome.status, outcome.events) == ("accepted", [])
    assert watch.unchanged()


def test_a_report_before_its_send_is_recorded_is_retried() -> None:
    # Given a link whose send has not been recorded yet (still attempting)
    world = World()
    world.configure()
    world.create()
    send = world.pending_sends()[-1]
    with world.uow() as uow:
        begin_attempt(send, uow, world.ctx)
        uow.commit()
    # When the report arrives, Then it is retried later (transient), nothing recorded
    with pytest.raises(TransientError, match="before its send was recorded"):
        world.run(_report(world, "delivered"))
    assert world.notification().report is None


@pytest.mark.parametrize(
    "status",
    [LinkStatus.IN_PROGRESS, LinkStatus.COMPLETED, LinkStatus.CANCELLED, LinkStatus.EXPIRED],
)
def test_a_report_in_any_later_link_state_is_recorded_without_changing_the_status(
    status: LinkStatus,
) -> None:
    # Given the link went further than sent
    world = World().in_link_status(status)
    # When a delivery report arrives
    (event,) = world.run(_report(world, "delivered")).events
    # Then it is on the timeline and the link status stays
    assert event.type == "link.delivered"
    assert world.order.link_status is status


def test_bounced_email_is_sent_by_sms_once() -> None:
    # Given a store with the SMS fallback and an order with email and phone
    world = _fallback_world()
    bounced = world.link_id
    expires_at = _current(world).expires_at
    # When the email bounces
    outcome = world.run(_report(world))
    # Then a new link goes out by SMS, with the bounced link's deadline
    assert [e.type for e in outcome.events] == ["link.bounced", "link.resent"]
    (sms,) = world.pending_sends()[1:]
    assert sms.channel == "sms"
    assert world.link_id != bounced
    assert _current(world).expires_at == expires_at
    assert world.deliver().status == "accepted"
    assert [n.channel for n in world.notifier.sent] == ["email", "sms"]
    assert world.notifier.sent[-1].recipient == PHONE
    # When the email bounces again (another event), and the SMS fails too
    assert world.run(_report(world, link_id=str(bounced))).events == []
    world.run(_report(world, channel="sms", provider="twilio", reason="30003"))
    # Then no further message is ever sent
    assert len(world.pending_sends()) == 2


def test_without_the_store_setting_a_bounce_sends_nothing_more() -> None:
    world = World()
    world.configure()
    world.create(customer={"email": "anna@example.com", "phone": PHONE})
    world.deliver()

    world.run(_report(world))

    assert len(world.pending_sends()) == 1


def test_without_a_phone_number_a_bounce_sends_nothing_more() -> None:
    world = World()
    world.configure(sms_fallback=True)
    world.create()
    world.deliver()

    world.run(_report(world))

    assert len(world.pending_sends()) == 1


def test_a_bounce_after_the_link_was_opened_sends_nothing_more() -> None:
    world = _fallback_world()
    world.open()

    world.run(_report(world))

    assert len(world.pending_sends()) == 1
