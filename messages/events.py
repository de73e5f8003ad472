"""Events: what happened, past tense. The ``type`` is the routing key on ``paylink.events``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from messages.common import Channel, EventBase


class StoreConfigured(EventBase):
    type: Literal["store.configured"] = "store.configured"
    store_name: str
    terms_url: str | None
    agreement_currencies: list[str]


class OrderCreated(EventBase):
    type: Literal["order.created"] = "order.created"
    created_by: str
    purchase_country: str
    currency: str
    order_amount: int
    order_tax_amount: int
    channel: Channel
    auto_capture: bool
    merchant_reference1: str
    merchant_reference2: str | None
    link_expires_at: datetime


class OrderRejected(EventBase):
    """Any command refused: bad input, wrong role, wrong status, unknown order."""

    type: Literal["order.rejected"] = "order.rejected"
    command_type: str
    code: str
    message: str


class LinkSent(EventBase):
    type: Literal["link.sent"] = "link.sent"
    link_id: UUID
    channel: Channel
    provider: str
    provider_message_id: str
    expires_at: datetime


class LinkDeliveryFailed(EventBase):
    type: Literal["link.delivery_failed"] = "link.delivery_failed"
    link_id: UUID
    channel: Channel
    provider: str
    reason: str


class LinkResent(EventBase):
    type: Literal["link.resent"] = "link.resent"
    link_id: UUID
    superseded_link_id: UUID | None
    expires_at: datetime


class LinkOpened(EventBase):
    type: Literal["link.opened"] = "link.opened"
    link_id: UUID


class LinkExpired(EventBase):
    type: Literal["link.expired"] = "link.expired"
    link_id: UUID
    expired_at: datetime


class OrderCompleted(EventBase):
    type: Literal["order.completed"] = "order.completed"
    authorization_id: str
    authorized_amount: int
    currency: str
    auto_capture: bool
    reservation_expires_at: datetime


class PaymentCaptured(EventBase):
    type: Literal["payment.captured"] = "payment.captured"
    amount: int
    currency: str
    captured_total: int
    payment_status: str
    auto_capture: bool = False


class PaymentRefunded(EventBase):
    type: Literal["payment.refunded"] = "payment.refunded"
    amount: int
    currency: str
    refunded_total: int
    payment_status: str


class PaymentReleased(EventBase):
    type: Literal["payment.released"] = "payment.released"
    amount: int
    currency: str
    payment_status: str


class PaymentExpired(EventBase):
    type: Literal["payment.expired"] = "payment.expired"
    released_amount: int
    currency: str


class OrderCancelled(EventBase):
    type: Literal["order.cancelled"] = "order.cancelled"
    #: "link" when cancelled before checkout, "payment" when an authorization was voided.
    stage: Literal["link", "payment"]
    released_amount: int


class ReturnFeeAdded(EventBase):
    type: Literal["order.return_fee_added"] = "order.return_fee_added"
    amount: int
    tax_amount: int
    currency: str
    order_amount: int


class OrderLinesUpdated(EventBase):
    type: Literal["order.lines_updated"] = "order.lines_updated"
    order_amount: int
    order_tax_amount: int


class CustomerDetailsUpdated(EventBase):
    """No personal data on the bus: says which fields changed, not their values."""

    type: Literal["order.customer_updated"] = "order.customer_updated"
    changed_fields: list[str]


EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        StoreConfigured,
        OrderCreated,
        OrderRejected,
        LinkSent,
        LinkDeliveryFailed,
        LinkResent,
        LinkOpened,
        LinkExpired,
        OrderCompleted,
        PaymentCaptured,
        PaymentRefunded,
        PaymentReleased,
        PaymentExpired,
        OrderCancelled,
        ReturnFeeAdded,
        OrderLinesUpdated,
        CustomerDetailsUpdated,
    )
}
