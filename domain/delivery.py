"""Delivering a payment link: the one handler that calls the outside world.

The provider call happens between two transactions, never while a row lock is held.
Two plain steps run through the command envelope (``domain.bus``) around it:

1. ``begin_attempt`` records the attempt (``ATTEMPTING``); the envelope commits it;
2. ``deliver`` calls the notifier, outside any transaction;
3. ``record_answer`` records the answer (``SENT`` with the provider's id, or
   ``FAILED`` with ``link.delivery_failed``) with its events and the processed record.

A database failure while recording step 3 is retried in process, as long as the
context's ``patience`` allows (the provider has already answered; redelivering would
send again): the bus marks that step patient. A redelivered command whose link is
already ``SENT`` is a replay. One that
finds ``ATTEMPTING`` means a worker died between 2 and 3: the provider may or may
not have accepted the message. That attempt is counted in ``uncertain_attempts`` and
first asks the provider (``Notifier.find``): if it already holds the message, its
receipt is recorded and nothing is sent; if it holds none, the link is sent (the first
delivery). If it cannot tell, paylink sends again (a lost link is worse than a
duplicate), and commits ``blind_resends + 1`` before it does: the count of possible
duplicates survives a kill right after that send.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.errors import DeliveryDeferred, DeliveryRejected, NotFound, ValidationFailed
from domain.links import Link, hash_token
from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from domain.order import Order
from domain.ports import (
    Context,
    NotificationRecord,
    NotificationState,
    UnitOfWork,
    UowFactory,
)
from domain.reminders import reminder_notification_id
from messages import commands as c
from messages.common import EventBase

#: What the provider said: it took the message, or refused it for good.
Answer = DeliveryReceipt | DeliveryRejected


def _load(cmd: c.SendPaymentLink, uow: UnitOfWork, ctx: Context) -> tuple[Order, Link]:
    order = uow.orders.get_for_update(cmd.order_id)
    if order is None:
        raise NotFound(f"order {cmd.order_id} does not exist", code="ORDER_NOT_FOUND")
    order.begin(cmd.command_id, ctx.clock.now())
    guard = order.link_for_reminder if cmd.reminder else order.link_for_delivery
    return order, guard(cmd.link_id, hash_token(cmd.token))


def _notification(
    order: Order, store_name: str, link: Link, cmd: c.SendPaymentLink, ctx: Context
) -> PaymentLinkNotification:
    channel = cmd.channel or ("email" if order.customer.email else "sms")
    recipient = order.customer.email if channel == "email" else order.customer.phone
    if recipient is None:
        raise ValidationFailed(
            "the customer's contact data was erased: the link cannot be sent",
            code="CUSTOMER_ERASED",
        )
    return PaymentLinkNotification(
        notification_id=_notification_id(cmd),
        order_id=order.order_id,
        channel=channel,
        recipient=recipient,
        store_name=store_name,
        purchase_country=order.purchase_country,
        currency=order.currency,
        order_amount=order.order_amount,
        link_url=f"{ctx.checkout_base_url.rstrip('/')}/{cmd.token}",
        expires_at=link.expires_at,
        merchant_reference=order.merchant_reference1,
        reminder=cmd.reminder,
    )


def _notification_id(cmd: c.SendPaymentLink) -> UUID:
    """The delivery record of this message: the link's own, or its reminder's."""
    return reminder_notification_id(cmd.link_id) if cmd.reminder else cmd.link_id


@dataclass(slots=True)
class Attempt:
    """A recorded attempt (``ATTEMPTING``, committed by the envelope) and what to send."""

    cmd: c.SendPaymentLink
    record: NotificationRecord
    notification: PaymentLinkNotification
    #: An earlier attempt's outcome is unknown (its worker died): ask before sending.
    uncertain: bool = False


def begin_attempt(cmd: c.SendPaymentLink, uow: UnitOfWork, ctx: Context) -> Attempt:
    """Step 1. A ``DomainError`` (unknown order, a superseded link) is raised before
    anything is staged."""
    order, link = _load(cmd, uow, ctx)
    store = uow.stores.get(order.store_id)
    store_name = store.name if store is not None else order.store_id
    notification = _notification(order, store_name, link, cmd, ctx)
    record = uow.notifications.get(notification.notification_id) or NotificationRecord(
        notification.notification_id,
        order.order_id,
        notification.channel,
        NotificationState.ATTEMPTING,
    )
    uncertain = record.state is NotificationState.ATTEMPTING and record.attempts > 0
    if uncertain:
        record.uncertain_attempts += 1
    record.state = NotificationState.ATTEMPTING
    record.attempts += 1
    uow.notifications.save(record)
    return Attempt(cmd, record, notification, uncertain)


def deliver(attempt: Attempt, uow_factory: UowFactory, ctx: Context) -> Answer:
    """Step 2: the provider call, outside any transaction. A refusal is an answer (the
    link is undeliverable); "try later" is recorded (``DEFERRED``) and raised for the
    runtime to retry; anything else is raised as it is (the attempt stays
    ``ATTEMPTING``, so a redelivery asks the provider first). After an uncertain
    attempt the provider is asked first; a message it already holds is not sent again."""
    notifier = ctx.notifier
    try:
        if attempt.uncertain:
            trace = notifier.find(attempt.notification)
            if isinstance(trace, DeliveryReceipt):
                return trace
            if trace is Trace.UNKNOWN:
                _save(attempt.record, uow_factory, blind_resends=attempt.record.blind_resends + 1)
        return notifier.send(attempt.notification)
    except DeliveryRejected as refusal:
        return refusal
    except DeliveryDeferred as exc:
        _save(attempt.record, uow_factory, state=NotificationState.DEFERRED, error=str(exc)[:500])
        raise


def _save(
    record: NotificationRecord,
    uow_factory: UowFactory,
    *,
    blind_resends: int | None = None,
    state: NotificationState | None = None,
    error: str | None = None,
) -> None:
    """Commit a change to the attempt's record on its own: a possible duplicate before
    it is sent (rare: a kill mid-send and a provider that cannot tell), so a second kill
    right after the send cannot lose the count; or a deferral."""
    if blind_resends is not None:
        record.blind_resends = blind_resends
    if state is not None:
        record.state, record.error = state, error
    with uow_factory() as uow:
        uow.notifications.save(record)
        uow.commit()


def record_answer(
    attempt: Attempt, answer: Answer, cmd: c.SendPaymentLink, uow: UnitOfWork, ctx: Context
) -> list[EventBase]:
    """Step 3: ``SENT`` and ``link.sent``, or ``FAILED`` and ``link.delivery_failed``.
    A resend that replaced the link meanwhile is a ``DomainError`` (recorded)."""
    order, link = _load(cmd, uow, ctx)
    record, channel = attempt.record, attempt.notification.channel
    if isinstance(answer, DeliveryReceipt):
        order.mark_link_sent(
            link, answer.provider, answer.provider_message_id, channel, reminder=cmd.reminder
        )
        record.state = NotificationState.SENT
        record.provider, record.provider_message_id = answer.provider, answer.provider_message_id
    else:
        order.mark_link_undeliverable(
            link,
            provider=answer.provider or "unknown",
            reason=answer.reason,
            channel=channel,
            reminder=cmd.reminder,
        )
        record.state, record.error = NotificationState.FAILED, answer.reason[:500]
    uow.notifications.save(record)
    return order.events
