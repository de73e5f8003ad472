"""Command handlers: plain typed functions over the ports.

Each takes the command, an open unit of work and the context, applies the rules and
returns the events it produced; ``domain.bus`` owns the transaction, idempotency
and rejections. Leaving the unit of work without commit rolls everything back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from domain.currency import currency_for_country
from domain.delivery import Attempt, begin_attempt
from domain.errors import NotFound, TransientError, ValidationFailed
from domain.line_ledger import LineRequest
from domain.lines import OrderLine, order_totals
from domain.links import Link, hash_token
from domain.order import CustomerContact, Order, ensure_editable_lines
from domain.permissions import authorize
from domain.ports import Context, NotificationState, UnitOfWork
from domain.reminders import ReminderDeadline, reminder_command_id
from domain.store import Store
from messages import commands as c
from messages import events as ev
from messages.common import (
    Channel,
    CommandBase,
    EventBase,
    LineType,
    MerchantCommand,
    OrderLineIn,
)

Events = list[EventBase]
#: A handler gives the command's events; send-link's first step gives the attempt to
#: finish outside the transaction (``domain.delivery``).
Handler = Callable[[Any, UnitOfWork, Context], Events | Attempt]


def to_line(line: OrderLineIn) -> OrderLine:
    return OrderLine.create(
        name=line.name,
        reference=line.reference,
        type=LineType(line.type.value),
        quantity=line.quantity,
        unit_price=line.unit_price,
        tax_rate=line.tax_rate,
        total_discount_amount=line.total_discount_amount,
        total_amount=line.total_amount,
        total_tax_amount=line.total_tax_amount,
    )


def to_lines(lines: Sequence[OrderLineIn] | None) -> tuple[OrderLine, ...]:
    return tuple(to_line(line) for line in lines or ())


def to_request(line: OrderLineIn) -> LineRequest:
    """A line named by a capture or refund: only what the caller gave is checked."""
    given = line.model_fields_set

    def opt(name: str) -> int | None:
        value = getattr(line, name)
        return value if name in given else None

    return LineRequest(
        reference=line.reference,
        quantity=line.quantity,
        type=LineType(line.type.value) if "type" in given else None,
        unit_price=line.unit_price,
        tax_rate=line.tax_rate,
        total_amount=opt("total_amount"),
        total_discount_amount=opt("total_discount_amount"),
        total_tax_amount=opt("total_tax_amount"),
    )


def to_requests(lines: Sequence[OrderLineIn] | None) -> tuple[LineRequest, ...]:
    return tuple(to_request(line) for line in lines or () if line.type is not LineType.RETURN_FEE)


def to_fees(lines: Sequence[OrderLineIn] | None) -> tuple[OrderLine, ...]:
    return tuple(to_line(line) for line in lines or () if line.type is LineType.RETURN_FEE)


def follow_up_id(cause: UUID, name: str) -> UUID:
    """Deterministic id for a follow-up command, so its cause fixes it once and for all."""
    return uuid.uuid5(cause, name)


def _order_for(
    cmd: MerchantCommand | CommandBase, order_id: UUID, uow: UnitOfWork, ctx: Context
) -> Order:
    if isinstance(cmd, MerchantCommand):
        authorize(cmd.actor, type(cmd).__name__, [])  # the role, before anything is read
    order = uow.orders.get_for_update(order_id)
    if order is None or (
        isinstance(cmd, MerchantCommand) and order.store_id not in cmd.actor.store_ids
    ):
        # "Not yours" and "not there" get the same answer (DESIGN §1): a publisher
        # cannot learn that another store's order exists, or which store holds it.
        raise NotFound(f"order {order_id} does not exist", code="ORDER_NOT_FOUND")
    return order.begin(cmd.command_id, ctx.clock.now())


def _order_by_token(
    cmd: c.PaymentLinkOpened | c.CheckoutCompleted, uow: UnitOfWork, ctx: Context
) -> tuple[Order, str]:
    token_hash = hash_token(cmd.token)
    order = uow.orders.get_by_token_for_update(token_hash)
    if order is None:
        raise NotFound("unknown payment link", code="LINK_UNKNOWN")
    return order.begin(cmd.command_id, ctx.clock.now()), token_hash


def _send_link_command(
    order: Order,
    cause: UUID,
    link_id: UUID,
    token: str,
    ctx: Context,
    channel: Channel | None = None,
) -> c.SendPaymentLink:
    return c.SendPaymentLink(
        command_id=follow_up_id(cause, f"send-link:{link_id}"),
        issued_at=ctx.clock.now(),
        order_id=order.order_id,
        link_id=link_id,
        token=token,
        channel=channel,
    )


def _send_link(
    order: Order,
    store: Store,
    cause: UUID,
    link: Link,
    token: str,
    uow: UnitOfWork,
    ctx: Context,
    channel: Channel | None = None,
) -> None:
    """Send a new link, and keep its reminder for the scheduler if the store wants one."""
    uow.outbox.add_command(_send_link_command(order, cause, link.link_id, token, ctx, channel))
    due = store.reminder_due(link.expires_at, ctx.clock.now())
    if due is not None:
        reminder = c.SendPaymentLink(
            command_id=reminder_command_id(link.link_id),
            issued_at=due,
            order_id=order.order_id,
            link_id=link.link_id,
            token=token,
            channel=channel,
            reminder=True,
        )
        uow.reminders.schedule(ReminderDeadline(order.order_id, link.link_id, due, reminder))


def configure_store(cmd: c.ConfigureStore, uow: UnitOfWork, ctx: Context) -> Events:
    authorize(cmd.actor, "ConfigureStore", [cmd.store_id])
    terms = str(cmd.terms_url) if cmd.terms_url is not None else None
    currencies = tuple(str(x) for x in cmd.agreement_currencies)
    store = Store(
        cmd.store_id,
        cmd.store_name,
        terms,
        currencies,
        cmd.sms_fallback,
        cmd.reminder_hours_before,
    )
    uow.stores.save(store)
    return [
        ev.StoreConfigured(
            event_id=uuid.uuid4(),
            occurred_at=ctx.clock.now(),
            command_id=cmd.command_id,
            store_id=store.store_id,
            store_name=store.name,
            terms_url=store.terms_url,
            agreement_currencies=list(store.agreement_currencies),
            sms_fallback=store.sms_fallback,
            reminder_hours_before=store.reminder_hours_before,
        )
    ]


def _configured_store(store_id: str, uow: UnitOfWork) -> Store:
    store = uow.stores.get(store_id)
    if store is None:
        raise ValidationFailed(
            f"store {store_id!r} has no order configuration (Terms and Conditions URL, "
            "agreement currencies)",
            code="TERMS_NOT_CONFIGURED",
        )
    return store


def create_order(cmd: c.CreateOrder, uow: UnitOfWork, ctx: Context) -> Events:
    authorize(cmd.actor, "CreateOrder", [cmd.store_id])
    store = _configured_store(cmd.store_id, uow)
    currency = currency_for_country(str(cmd.purchase_country))
    if cmd.purchase_currency is not None and str(cmd.purchase_currency) != currency:
        raise ValidationFailed(
            f"purchase country {cmd.purchase_country} pays in {currency}, not {cmd.purchase_currency}",
            code="CURRENCY_COUNTRY_MISMATCH",
        )
    store.ensure_accepts_orders_in(currency)
    if uow.orders.get(cmd.order_id) is not None:
        raise ValidationFailed(f"order {cmd.order_id} already exists", code="ORDER_ALREADY_EXISTS")
    lines = to_lines(cmd.order_lines)
    ensure_editable_lines(lines)
    order_totals(lines)
    now = ctx.clock.now()
    order = Order(
        order_id=cmd.order_id,
        store_id=cmd.store_id,
        created_by=cmd.actor.user_id,
        created_at=now,
        customer=CustomerContact(
            email=str(cmd.customer.email) if cmd.customer.email else None,
            phone=cmd.customer.phone,
            name=cmd.customer.name,
        ),
        purchase_country=str(cmd.purchase_country),
        currency=currency,
        merchant_reference1=cmd.merchant_reference1,
        merchant_reference2=cmd.merchant_reference2,
        lines=lines,
        auto_capture=cmd.auto_capture,
    ).begin(cmd.command_id, now)
    token = ctx.tokens.new_token()
    link = order.issue_link(uuid.uuid4(), hash_token(token), ctx.link_ttl)
    order.record_created()
    uow.orders.add(order)
    _send_link(order, store, cmd.command_id, link, token, uow, ctx)
    return order.events


def resend_payment_link(cmd: c.ResendPaymentLink, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    # Seed 000: without Terms and Conditions "you will not be able to create or send order(s)".
    store = _configured_store(order.store_id, uow)
    store.ensure_accepts_orders_in(order.currency)
    token = ctx.tokens.new_token()
    link = order.resend_link(uuid.uuid4(), hash_token(token), ctx.link_ttl)
    _send_link(order, store, cmd.command_id, link, token, uow, ctx)
    return order.events


def expire_payment_link(cmd: c.ExpirePaymentLink, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.expire_link(cmd.link_id)
    return order.events


def payment_link_opened(cmd: c.PaymentLinkOpened, uow: UnitOfWork, ctx: Context) -> Events:
    order, token_hash = _order_by_token(cmd, uow, ctx)
    order.open_link(token_hash)
    return order.events


def checkout_completed(cmd: c.CheckoutCompleted, uow: UnitOfWork, ctx: Context) -> Events:
    problem = ctx.checkout_proofs.problem(cmd)
    if problem is not None:
        # Before anything is read: an unproven report changes nothing, and says nothing
        # about the link it names.
        raise ValidationFailed(problem, code="CHECKOUT_PROOF_INVALID")
    order, token_hash = _order_by_token(cmd, uow, ctx)
    order.complete_checkout(
        token_hash,
        cmd.authorization_id,
        cmd.authorized_amount,
        str(cmd.currency),
        ctx.reservation_ttl,
    )
    return order.events


def record_link_delivery(cmd: c.RecordLinkDelivery, uow: UnitOfWork, ctx: Context) -> Events:
    """A report on a link that is not the order's current one (unknown, superseded by
    a resend or a fallback) or that repeats the outcome already recorded is accepted
    and changes nothing: providers retry a refused webhook, so a refusal would only
    come back. A report that overtakes the record of its own send (the local outbox
    reports at once) is retried until the send is recorded."""
    record = uow.notifications.get(cmd.link_id)
    order = uow.orders.get_for_update(cmd.order_id) if record is not None else None
    link = order.current_link if order is not None else None
    if record is None or order is None or link is None or link.link_id != cmd.link_id:
        return []
    if record.state is NotificationState.ATTEMPTING:
        raise TransientError("a delivery report arrived before its send was recorded")
    if record.report == cmd.outcome:
        return []
    order.begin(cmd.command_id, ctx.clock.now())
    record.report, record.report_reason = cmd.outcome, cmd.reason
    uow.notifications.save(record)
    failed = cmd.outcome == "failed"
    order.report_delivery(
        link, record.channel, cmd.provider, delivered=not failed, reason=cmd.reason
    )
    store = uow.stores.get(order.store_id)
    fallback = store is not None and store.sms_fallback and record.channel == "email"
    if failed and store is not None and fallback and order.can_fall_back_to_sms(link):
        token = ctx.tokens.new_token()
        sms = order.fall_back_to_sms(uuid.uuid4(), hash_token(token))
        _send_link(order, store, cmd.command_id, sms, token, uow, ctx, "sms")
    return order.events


def capture_payment(cmd: c.CapturePayment, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    if to_fees(cmd.order_lines):
        raise ValidationFailed(
            "return_fee lines belong to refunds, not captures", code="LINE_TYPE_NOT_ALLOWED"
        )
    order.capture(cmd.amount, to_requests(cmd.order_lines), cmd.description)
    return order.events


def refund_payment(cmd: c.RefundPayment, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.refund(
        cmd.amount, to_requests(cmd.order_lines), cmd.description, fees=to_fees(cmd.order_lines)
    )
    return order.events


def cancel_order(cmd: c.CancelOrder, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.cancel()
    return order.events


def release_remaining_authorization(
    cmd: c.ReleaseRemainingAuthorization, uow: UnitOfWork, ctx: Context
) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.release_remaining()
    return order.events


def add_return_fee(cmd: c.AddReturnFee, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    fee = OrderLine.create(
        name=cmd.name,
        reference=cmd.reference or order.next_return_fee_reference(),
        type=LineType.RETURN_FEE,
        quantity=1,
        unit_price=cmd.amount,
        tax_rate=cmd.tax_rate,
    )
    order.add_return_fee(fee, cmd.refund_amount)
    return order.events


def update_order_lines(cmd: c.UpdateOrderLines, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.update_lines(to_lines(cmd.order_lines))
    return order.events


def update_customer_details(cmd: c.UpdateCustomerDetails, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.update_customer(str(cmd.email) if cmd.email else None, cmd.phone, cmd.name)
    return order.events


def erase_customer_data(cmd: c.EraseCustomerData, uow: UnitOfWork, ctx: Context) -> Events:
    authorize(cmd.actor, "EraseCustomerData", [cmd.store_id])
    email = str(cmd.email) if cmd.email else None
    events: Events = []
    for order_id in uow.orders.ids_by_customer(cmd.store_id, email=email, phone=cmd.phone):
        order = uow.orders.get_for_update(order_id)
        if order is not None:
            order.begin(cmd.command_id, ctx.clock.now()).erase_customer()
            events += order.events
    return events


def expire_authorization(cmd: c.ExpireAuthorization, uow: UnitOfWork, ctx: Context) -> Events:
    order = _order_for(cmd, cmd.order_id, uow, ctx)
    order.expire_authorization()
    return order.events


#: Every command paylink handles, and its handler (for SendPaymentLink, its first step).
HANDLERS: dict[type[CommandBase], Handler] = {
    c.ConfigureStore: configure_store,
    c.CreateOrder: create_order,
    c.SendPaymentLink: begin_attempt,
    c.ResendPaymentLink: resend_payment_link,
    c.ExpirePaymentLink: expire_payment_link,
    c.PaymentLinkOpened: payment_link_opened,
    c.CheckoutCompleted: checkout_completed,
    c.RecordLinkDelivery: record_link_delivery,
    c.CapturePayment: capture_payment,
    c.RefundPayment: refund_payment,
    c.CancelOrder: cancel_order,
    c.ReleaseRemainingAuthorization: release_remaining_authorization,
    c.AddReturnFee: add_return_fee,
    c.UpdateOrderLines: update_order_lines,
    c.UpdateCustomerDetails: update_customer_details,
    c.ExpireAuthorization: expire_authorization,
    c.EraseCustomerData: erase_customer_data,
}
