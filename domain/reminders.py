"""The reminder before expiry: when it is due, and whether it still applies.

A store may ask (``Store.reminder_hours_before``) for one reminder to a customer who
has not opened the link, some hours before it expires. The rules, decided here once:

- One reminder per link at most: its command id follows from the link
  (:func:`reminder_command_id`), and the scheduler releases a link's deadline once.
- A resend issues a new link, valid 48 hours again: the new link gets its own
  reminder (at most once); the old link's is refused as superseded. So a customer who
  got a fresh link is never reminded of the dead one.
- Only a link that reached the customer (delivered, ``Delivery.SENT``) and is still
  Created: never after it was opened, completed, cancelled or expired
  (``LinkAction.REMIND`` in the transition table).
- The scheduler asks :func:`check_reminder` before releasing a due reminder (a paid
  order's reminder is dropped quietly, not rejected), and the aggregate asks it again
  when the reminder is sent (the order may have moved meanwhile).
- A reminder is a ``SendPaymentLink`` with ``reminder=True`` and counts as a send: a
  ``link.sent`` with ``reminder: true``.

The deadline row holds the reminder's command, token included, until the scheduler
releases it into the outbox (and clears it): paylink keeps only token hashes, and a
reminder without the link would not help the customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.errors import LinkError
from domain.links import Delivery
from domain.status import LinkAction, LinkStatus, next_link_status
from messages.commands import SendPaymentLink


@dataclass(frozen=True, slots=True)
class RemindableLink:
    """What the reminder rule reads of an order: its link status and current link."""

    link_status: LinkStatus
    current_link_id: UUID | None
    delivery: Delivery
    expires_at: datetime


def check_reminder(link: RemindableLink, link_id: UUID, now: datetime) -> None:
    """Raise a ``LinkError`` or ``ActionNotAllowed`` saying why ``link_id`` is not to be
    reminded of at ``now``; return when it is."""
    if link.current_link_id != link_id:
        raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
    next_link_status(link.link_status, LinkAction.REMIND)
    if link.delivery is not Delivery.SENT:
        raise LinkError("the link never reached the customer", code="LINK_NOT_SENT")
    if now >= link.expires_at:
        raise LinkError("the payment link has expired", code="LINK_EXPIRED")


def reminder_command_id(link_id: UUID) -> UUID:
    """The one reminder of a link: a second release is a duplicate, not a second send."""
    return uuid.uuid5(link_id, "remind-link")


def reminder_notification_id(link_id: UUID) -> UUID:
    """The reminder's own delivery record and provider idempotency key (the link's first
    message has the link id): a provider asked about one never answers for the other."""
    return uuid.uuid5(link_id, "reminder")


@dataclass(frozen=True, slots=True)
class ReminderDeadline:
    """A reminder to release at ``due_at``, written with the link it reminds of."""

    order_id: UUID
    link_id: UUID
    due_at: datetime
    command: SendPaymentLink
