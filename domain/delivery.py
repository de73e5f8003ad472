"""Delivering a payment link: the one handler that calls the outside world.

The provider call happens between two transactions, never while a row lock is held:

1. record the attempt (``ATTEMPTING``) and commit;
2. call the notifier;
3. record the outcome (``SENT`` with the provider's id, or ``FAILED``) with its event.

A database failure while recording step 3 is retried in process, as long as the
context's ``patience`` allows (the provider has already answered; redelivering would
send again). A redelivered command whose link
is already ``SENT`` does nothing again. One that
finds ``ATTEMPTING`` means a worker died between 2 and 3: the provider may or may
not have accepted the message. That attempt is counted in ``uncertain_attempts`` and
first asks the provider (``Notifier.find``): if it already holds the message, its
receipt is recorded and nothing is sent; if it holds none, the link is sent (the first
delivery). If it cannot tell, paylink sends again (a lost link is worse than a
duplicate), and commits ``blind_resends + 1`` before it does: the count of possible
duplicates survives a kill right after that send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from domain.errors import (
    DeliveryDeferred,
    DeliveryRejected,
    DomainError,
    NotFound,
    ValidationFailed,
)
from domain.links import Link, hash_token
from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from domain.order import Order
from domain.outcomes import Cause, Outcome, UowFactory, record_rejection, replay
from domain.ports import (
    Context,
    NotificationRecord,
    NotificationState,
    ProcessedCommand,
    UnitOfWork,
)
from domain.reminders import reminder_notification_id
from messages import commands as c


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
    recipient = order.customer.email or order.customer.phone
    if recipient is None:
        raise ValidationFailed(
            "the customer's contact data was erased: the link cannot be sent",
            code="CUSTOMER_ERASED",
        )
    return PaymentLinkNotification(
        notification_id=_notification_id(cmd),
        order_id=order.order_id,
        channel="email" if order.customer.email else "sms",
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
    """A recorded attempt (``ATTEMPTING``, committed) and what to send."""

    cmd: c.SendPaymentLink
    digest: str
    record: NotificationRecord
    notification: PaymentLinkNotification
    #: An earlier attempt's outcome is unknown (its worker died): ask before sending.
    uncertain: bool = False


def begin_attempt(cmd: c.SendPaymentLink, digest: str, uow: UnitOfWork, ctx: Context) -> Attempt:
    """Step 1 in an open unit of work (the caller commits). A ``DomainError`` (unknown
    order, a superseded link) is raised before anything is staged."""
    order, link = _load(cmd, uow, ctx)
    notification_id = _notification_id(cmd)
    record = uow.notifications.get(notification_id) or NotificationRecord(
        notification_id, order.order_id, order.channel, NotificationState.ATTEMPTING
    )
    uncertain = record.state is NotificationState.ATTEMPTING and record.attempts > 0
    if uncertain:
        record.uncertain_attempts += 1
    record.state = NotificationState.ATTEMPTING
    record.attempts += 1
    uow.notifications.save(record)
    store = uow.stores.get(order.store_id)
    store_name = store.name if store is not None else order.store_id
    notification = _notification(order, store_name, link, cmd, ctx)
    return Attempt(cmd, digest, record, notification, uncertain)


def send_payment_link(
    cmd: c.SendPaymentLink, digest: str, uow_factory: UowFactory, ctx: Context
) -> Outcome:
    # 1. record the attempt
    try:
        with uow_factory() as uow:
            prior = uow.processed.get(cmd.command_id)
            if prior is not None:
                return replay(prior, Cause.of(cmd), digest, uow, ctx)
            attempt = begin_attempt(cmd, digest, uow, ctx)
            uow.commit()
    except DomainError as error:
        return record_rejection(Cause.of(cmd), error, uow_factory, ctx, digest, cmd)
    # 2. call the provider, holding no lock; 3. record what it said
    receipt = deliver(attempt, uow_factory, ctx)
    if not isinstance(receipt, DeliveryReceipt):
        return receipt()
    return record_sent(attempt, receipt, uow_factory, ctx)


def deliver(
    attempt: Attempt, uow_factory: UowFactory, ctx: Context
) -> DeliveryReceipt | Callable[[], Outcome]:
    """Step 2: the provider call, outside any transaction. A refusal or failure comes
    back as the continuation that handles it (``after_failure``), to be run by the
    caller whose message it is. After an uncertain attempt the provider is asked
    first; a message it already holds is not sent again."""
    notifier = ctx.notifier
    try:
        if attempt.uncertain:
            trace = notifier.find(attempt.notification)
            if isinstance(trace, DeliveryReceipt):
                return trace
            if trace is Trace.UNKNOWN:
                _count_blind_resend(attempt, uow_factory)
        return notifier.send(attempt.notification)
    except Exception as exc:
        return partial(after_failure, attempt, exc, uow_factory, ctx)


def _count_blind_resend(attempt: Attempt, uow_factory: UowFactory) -> None:
    """Commit the possible duplicate before sending it (rare: a kill mid-send and a
    provider that cannot tell), so a second kill right after the send cannot lose it."""
    record = attempt.record
    with uow_factory() as uow:
        record.blind_resends += 1
        uow.notifications.save(record)
        uow.commit()


def after_failure(
    attempt: Attempt, exc: BaseException, uow_factory: UowFactory, ctx: Context
) -> Outcome:
    """Step 3 when the provider refused: deferred (record it, retry later) or rejected
    (the link is undeliverable); anything else is re-raised for the runtime."""
    record = attempt.record
    if isinstance(exc, DeliveryDeferred):
        with uow_factory() as uow:
            record.state, record.error = NotificationState.DEFERRED, str(exc)[:500]
            uow.notifications.save(record)
            uow.commit()
        raise exc
    if not isinstance(exc, DeliveryRejected):
        raise exc
    reason, provider = exc.reason, exc.provider or "unknown"

    def undeliverable(order: Order, link: Link) -> None:
        order.mark_link_undeliverable(
            link, provider=provider, reason=reason, reminder=attempt.cmd.reminder
        )
        record.state, record.error = NotificationState.FAILED, reason[:500]

    return _record_outcome(attempt, uow_factory, ctx, undeliverable)


def _sent(attempt: Attempt, receipt: DeliveryReceipt) -> Callable[[Order, Link], None]:
    record = attempt.record

    def sent(order: Order, link: Link) -> None:
        order.mark_link_sent(
            link, receipt.provider, receipt.provider_message_id, reminder=attempt.cmd.reminder
        )
        record.state = NotificationState.SENT
        record.provider, record.provider_message_id = receipt.provider, receipt.provider_message_id

    return sent


def record_sent(
    attempt: Attempt, receipt: DeliveryReceipt, uow_factory: UowFactory, ctx: Context
) -> Outcome:
    """Step 3 after the provider accepted: ``SENT`` and ``link.sent``."""
    return _record_outcome(attempt, uow_factory, ctx, _sent(attempt, receipt))


def stage_sent(
    attempt: Attempt, receipt: DeliveryReceipt, uow: UnitOfWork, ctx: Context
) -> Outcome:
    """``record_sent`` in an open unit of work (the caller commits)."""
    return _outcome_in(attempt, uow, ctx, _sent(attempt, receipt))


def _record_outcome(
    attempt: Attempt,
    uow_factory: UowFactory,
    ctx: Context,
    apply: Callable[[Order, Link], None],
) -> Outcome:
    """Record what the provider said, retrying the database here rather than redelivering.

    The provider has already answered: giving up now (a TransientError to the runtime)
    would send the link again on redelivery. So a database hiccup is waited out in
    process, for as long as ``ctx.patience`` says (workers set it below the actor's time
    limit); a domain refusal (a resend replaced the link meanwhile) is recorded.
    """
    cmd = attempt.cmd

    def record() -> Outcome:
        with uow_factory() as uow:
            outcome = _outcome_in(attempt, uow, ctx, apply)
            uow.commit()
            return outcome

    try:
        return ctx.patience.call(record)
    except DomainError as error:
        return record_rejection(Cause.of(cmd), error, uow_factory, ctx, attempt.digest, cmd)


def _outcome_in(
    attempt: Attempt, uow: UnitOfWork, ctx: Context, apply: Callable[[Order, Link], None]
) -> Outcome:
    cmd = attempt.cmd
    prior = uow.processed.get(cmd.command_id)
    if prior is not None:  # an earlier try committed after all
        return Outcome(cmd.command_id, "accepted", list(prior.events))
    order, link = _load(cmd, uow, ctx)
    apply(order, link)
    uow.notifications.save(attempt.record)
    events = list(order.events)  # commit drains the aggregate's list
    for event in events:
        uow.outbox.add_event(event)
    uow.processed.add(
        ProcessedCommand(
            cmd.command_id, "SendPaymentLink", attempt.digest, "accepted", tuple(events)
        )
    )
    return Outcome(cmd.command_id, "accepted", events)
