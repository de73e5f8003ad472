"""The reminder before expiry: scheduled with the link, sent once, only while it helps.

The scheduler's check (``domain.reminders.check_reminder`` on the columns it reads) and
the aggregate's (``Order.link_for_reminder``, when the reminder is sent) are one rule:
for every link status they accept or refuse alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from domain.errors import DeliveryRejected, DomainError
from domain.links import Delivery
from domain.ports import LINK_TTL
from domain.reminders import (
    RemindableLink,
    ReminderDeadline,
    check_reminder,
    reminder_command_id,
    reminder_notification_id,
)
from domain.status import LinkStatus
from domain.store import Store
from messages import commands as c
from messages.events import LinkDeliveryFailed, LinkSent
from tests.fakes import RecordingNotifier
from tests.unit.builders import World, build

HOURS = 6


def reminding_world() -> World:
    return World(store={"reminder_hours_before": HOURS})


def only_deadline(world: World) -> ReminderDeadline:
    (deadline,) = world.db.reminders.values()
    return deadline


def test_a_new_link_gets_its_reminder_deadline_when_the_store_asks_for_one() -> None:
    # Given a store that reminds 6 hours before expiry
    world = reminding_world()
    world.configure()
    # When an order is created
    world.create()
    # Then one reminder waits for the link's deadline minus 6 hours, carrying its token
    deadline = only_deadline(world)
    link = world.order.current_link
    assert link is not None
    assert deadline.due_at == link.expires_at - timedelta(hours=HOURS)
    assert (deadline.link_id, deadline.order_id) == (link.link_id, world.order_id)
    cmd = deadline.command
    assert (cmd.reminder, cmd.token, cmd.link_id) == (True, world.token, link.link_id)
    assert cmd.command_id == reminder_command_id(link.link_id)


def test_a_store_without_the_setting_schedules_no_reminder() -> None:
    world = World().sent_order()
    assert world.db.reminders == {}


def test_a_store_configured_event_says_how_many_hours_before() -> None:
    world = reminding_world()
    event = world.configure().events[0]
    assert event.model_dump()["reminder_hours_before"] == HOURS
    assert World().configure().events[0].model_dump()["reminder_hours_before"] is None


@pytest.mark.parametrize("hours", [0, 48])
def test_a_reminder_must_fall_within_the_links_life(hours: int) -> None:
    with pytest.raises(ValidationError, match="reminder_hours_before"):
        build(c.ConfigureStore, reminder_hours_before=hours)


def test_a_reminder_whose_moment_has_passed_is_not_kept() -> None:
    store = Store("s", "Shop", "https://shop.example/terms", ("SEK",), reminder_hours_before=6)
    expires = datetime(2026, 1, 2, tzinfo=UTC)
    assert store.reminder_due(expires, expires - timedelta(hours=7)) == expires - timedelta(hours=6)
    assert store.reminder_due(expires, expires - timedelta(hours=6)) is None


def _due_reminder(world: World) -> c.SendPaymentLink:
    deadline = only_deadline(world)
    world.clock.current = max(world.clock.now(), deadline.due_at)
    return deadline.command


REFUSED = {
    LinkStatus.IN_PROGRESS: "ACTION_NOT_ALLOWED_IN_STATUS",
    LinkStatus.COMPLETED: "ACTION_NOT_ALLOWED_IN_STATUS",
    LinkStatus.CANCELLED: "ACTION_NOT_ALLOWED_IN_STATUS",
    LinkStatus.EXPIRED: "ACTION_NOT_ALLOWED_IN_STATUS",
}


@pytest.mark.parametrize("status", list(LinkStatus))
def test_only_a_link_not_yet_opened_is_reminded_and_the_scheduler_agrees(
    status: LinkStatus,
) -> None:
    # Given a delivered link, brought into the status
    world = reminding_world().in_link_status(status)
    reminder = _due_reminder(world)
    link = world.order.current_link
    assert link is not None
    state = RemindableLink(world.order.link_status, link.link_id, link.delivery, link.expires_at)
    sent_before = len(world.notifier.sent)
    watch = world.watch()
    # When the scheduler asks the rule, and the reminder is sent
    scheduler_code = None
    try:
        check_reminder(state, link.link_id, world.clock.now())
    except DomainError as error:
        scheduler_code = error.code
    outcome = world.run(reminder)
    # Then both say the same, and only an unopened link is reminded
    if status is LinkStatus.CREATED:
        assert scheduler_code is None
        assert outcome.status == "accepted"
        (event,) = outcome.events
        assert isinstance(event, LinkSent)
        assert event.reminder
        (note,) = world.notifier.sent[sent_before:]
        assert note.reminder
        assert note.notification_id == reminder_notification_id(link.link_id)
        assert note.link_url.endswith(world.token)
        assert world.order.current_link is not None
        assert world.order.current_link.delivery is Delivery.SENT
        assert world.order.link_status is LinkStatus.CREATED
    else:
        assert scheduler_code == REFUSED[status]
        watch.assert_refused(outcome, REFUSED[status])


def test_a_reminder_is_sent_once_even_if_released_twice() -> None:
    world = reminding_world().sent_order()
    reminder = _due_reminder(world)
    assert world.run(reminder).status == "accepted"
    again = world.run(reminder)
    assert again.status == "duplicate"
    assert [n.reminder for n in world.notifier.sent] == [False, True]


def test_a_resent_link_gets_its_own_reminder_and_the_old_one_is_refused() -> None:
    # Given a delivered link, replaced by a resend that was delivered too
    world = reminding_world().sent_order()
    old = world.link_id
    world.ok(c.ResendPaymentLink)
    assert world.deliver().status == "accepted"
    new = world.link_id
    assert set(world.db.reminders) == {old, new}
    world.clock.current = world.db.reminders[new].due_at
    # When both reminders come due
    stale = world.run(world.db.reminders[old].command)
    fresh = world.run(world.db.reminders[new].command)
    # Then only the new link is reminded of
    assert (stale.status, stale.code) == ("rejected", "LINK_SUPERSEDED")
    assert fresh.status == "accepted"
    assert fresh.events[0].model_dump()["link_id"] == new


def test_a_link_that_never_reached_the_customer_is_not_reminded() -> None:
    world = reminding_world()
    world.configure()
    world.create()  # the SendPaymentLink never ran
    watch = world.watch()
    watch.assert_refused(world.run(_due_reminder(world)), "LINK_NOT_SENT")


def test_a_reminder_past_the_links_deadline_is_not_sent() -> None:
    world = reminding_world().sent_order()
    reminder = _due_reminder(world)
    world.clock.current = world.order.created_at + LINK_TTL
    watch = world.watch()
    watch.assert_refused(world.run(reminder), "LINK_EXPIRED")


def test_a_reminder_the_provider_refuses_leaves_the_delivered_link_as_it_was() -> None:
    # Given a provider that refuses every message after the first
    notifier = RecordingNotifier()
    world = World(notifier, store={"reminder_hours_before": HOURS}).sent_order()
    notifier.fail_with = DeliveryRejected("mailbox unavailable", provider="recording")
    # When the reminder is refused
    outcome = world.run(_due_reminder(world))
    # Then it is recorded as the reminder's failure; the link stays delivered
    (event,) = outcome.events
    assert isinstance(event, LinkDeliveryFailed)
    assert event.reminder
    assert world.order.current_link is not None
    assert world.order.current_link.delivery is Delivery.SENT


def test_an_sms_fallback_link_gets_its_own_reminder_by_sms() -> None:
    # Given a store with reminders and the SMS fallback, and an email link that bounced
    world = World(store={"reminder_hours_before": HOURS, "sms_fallback": True})
    world.configure()
    world.create(customer={"email": "anna@example.com", "phone": "+46701234567"})
    assert world.deliver().status == "accepted"
    bounced = world.link_id
    world.ok(c.RecordLinkDelivery, link_id=str(bounced), outcome="failed", reason="550")
    assert world.deliver().status == "accepted"  # the fallback link, by SMS
    fallback = world.link_id
    world.clock.current = world.db.reminders[fallback].due_at
    # When both reminders come due
    stale = world.run(world.db.reminders[bounced].command)
    fresh = world.run(world.db.reminders[fallback].command)
    # Then only the fallback link is reminded of, by SMS, to the phone
    assert (stale.status, stale.code) == ("rejected", "LINK_SUPERSEDED")
    assert fresh.status == "accepted"
    reminder = world.notifier.sent[-1]
    assert (reminder.reminder, reminder.channel) == (True, "sms")
