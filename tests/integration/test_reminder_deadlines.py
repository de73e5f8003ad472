"""The reminder before expiry on PostgreSQL (and SQLite): kept with the link, released by
the scheduler once, dropped when the domain's rule says it no longer helps, and end to
end through the real scheduler, relay and worker."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from domain.reminders import reminder_notification_id
from messages import commands as c
from tests.integration.test_storage import Env
from workers.devtools.commands import (
    completed,
    configure_store,
    create_order,
    merchant,
    opened,
)
from workers.devtools.harness import Harness, token_from_outbox
from workers.processes.scheduler import release_reminders
from workers.storage import tables as t

pytestmark = pytest.mark.integration


def _sent_order(env: Env) -> tuple[uuid.UUID, uuid.UUID]:
    """An order whose link was delivered: (order id, link id)."""
    cmd = create_order()
    assert env.run(cmd).status == "accepted"
    send = c.SendPaymentLink.model_validate(env._commands()[-1]["args"][0])
    assert env.run(send).status == "accepted"
    return cmd.order_id, send.link_id


def _last_token(env: Env) -> str:
    return env.notifier.sent[-1].link_url.rsplit("/", 1)[1]


def _reminder_rows(engine: Engine) -> list[tuple[uuid.UUID, datetime | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.link_reminders.c.link_id, t.link_reminders.c.due_at, t.link_reminders.c.command
            )
        )
        return [(r.link_id, r.due_at, r.command) for r in rows]


def test_a_due_reminder_is_released_once_and_its_token_no_longer_kept(database_url: str) -> None:
    # Given a store that reminds 6 hours before expiry, and a delivered link
    env = Env(database_url)
    assert env.run(configure_store(reminder_hours_before=6)).status == "accepted"
    _order_id, link_id = _sent_order(env)
    [(row_link, due, command)] = _reminder_rows(env.engine)
    assert row_link == link_id
    assert command is not None
    # When the scheduler ticks just before, at, and after the deadline
    before = release_reminders(env.sessions, due - timedelta(seconds=1), 100)
    at = release_reminders(env.sessions, due, 100)
    again = release_reminders(env.sessions, due + timedelta(hours=1), 100)
    # Then it is released once, as the reminder's SendPaymentLink, and the row forgets it
    assert (before, at, again) == (0, 1, 0)
    assert _reminder_rows(env.engine) == [(link_id, None, None)]
    reminder = c.SendPaymentLink.model_validate(env._commands()[-1]["args"][0])
    assert (reminder.reminder, reminder.link_id) == (True, link_id)
    # And sent by the worker, it is a link.sent with reminder: true
    env.clock.current = due
    outcome = env.run(reminder)
    assert outcome.status == "accepted"
    assert outcome.events[0].model_dump()["reminder"] is True
    assert env.notifier.sent[-1].notification_id == reminder_notification_id(link_id)
    with env.engine.connect() as conn:
        state = conn.execute(
            select(t.notifications.c.state).where(
                t.notifications.c.link_id == reminder_notification_id(link_id)
            )
        ).scalar_one()
    assert state == "sent"


def test_a_reminder_that_no_longer_helps_is_dropped_at_release(database_url: str) -> None:
    # Given reminders for a link opened, one paid, and one replaced by a resend
    env = Env(database_url)
    assert env.run(configure_store(reminder_hours_before=6)).status == "accepted"
    _sent_order(env)
    assert env.run(opened(_last_token(env))).status == "accepted"
    _sent_order(env)
    assert env.run(completed(_last_token(env))).status == "accepted"
    resent, old_link = _sent_order(env)
    due = max(d for _, d, _ in _reminder_rows(env.engine) if d is not None)
    env.clock.advance(hours=1)
    assert env.run(merchant(c.ResendPaymentLink, resent)).status == "accepted"
    commands_before = len(env._commands())
    # When the scheduler ticks at the deadline of the first three (the resent link's own
    # reminder is due an hour later)
    released = release_reminders(env.sessions, due, 100)
    # Then nothing is released and the three rows are no longer due
    assert released == 0
    assert len(env._commands()) == commands_before
    pending = [link for link, d, _ in _reminder_rows(env.engine) if d is not None]
    assert len(pending) == 1
    assert pending[0] != old_link


def test_reminders_reach_only_the_links_not_yet_opened_through_scheduler_and_relay(
    harness_factory: Callable[..., Harness],
) -> None:
    # Given links valid one hour and 20 seconds, a store reminding one hour before
    h = harness_factory(
        PAYLINK_LINK_TTL_SECONDS=str(3600 + 20), PAYLINK_SCHEDULER_POLL_SECONDS="0.2"
    )
    h.start_all()
    store = configure_store(reminder_hours_before=1)
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    orders: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    for name in ("waiting", "opened", "paid", "cancelled", "resent"):
        cmd = create_order()
        h.publish(cmd)
        sent = h.wait_event("link.sent", order_id=cmd.order_id)
        orders[name] = (cmd.order_id, uuid.UUID(sent["link_id"]))
    outbox = h.workdir / "outbox"
    token = {n: token_from_outbox(outbox, str(link)) for n, (_, link) in orders.items()}
    # When one customer opens the link, one pays, the merchant cancels one and resends one
    h.publish(opened(token["opened"]))
    h.publish(completed(token["paid"]))
    h.publish(merchant(c.CancelOrder, orders["cancelled"][0]))
    resend = merchant(c.ResendPaymentLink, orders["resent"][0])
    h.publish(resend)
    new_link = uuid.UUID(h.wait_event("link.resent", command_id=resend.command_id)["link_id"])
    for name, kind in (("opened", "link.opened"), ("paid", "order.completed")):
        h.wait_event(kind, order_id=orders[name][0])
    h.wait_event("order.cancelled", order_id=orders["cancelled"][0])

    # Then the waiting link and the resent order's new link are reminded, once each
    def reminders() -> list[tuple[str, str]]:
        sent = h.events_for(type_="link.sent")
        return sorted((str(e["order_id"]), str(e["link_id"])) for e in sent if e.get("reminder"))

    h.wait_for(lambda: len(reminders()) >= 2, timeout=60, what="two reminders")
    h.wait_for(
        lambda: all(due is None for _, due, _ in _reminder_rows(h.engine)),
        timeout=30,
        what="every reminder released or dropped",
    )
    waiting_order, waiting_link = orders["waiting"]
    resent_order = orders["resent"][0]
    assert reminders() == sorted(
        [(str(waiting_order), str(waiting_link)), (str(resent_order), str(new_link))]
    )
    # And the customer's reminder is worded as one, with the link they already have
    note = outbox / f"{reminder_notification_id(waiting_link)}.eml"
    message = email.message_from_bytes(note.read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]).startswith("Påminnelse")
    assert token_from_outbox(outbox, note.stem) == token["waiting"]
