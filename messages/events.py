"""Events: what happened, past tense. The ``type`` is the routing key on ``paylink.events``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from messages.common import Channel, EventBase, WireModel


class LineShareOut(WireModel):
    """One order line's part of a capture or refund, as paylink computed it."""

    reference: Annotated[str, Field(max_length=255)]
    quantity: int
    #: Minor units, tax included.
    amount: int
    tax_amount: int


class StoreConfigured(EventBase):
    type: Literal["store.configured"] = "store.configured"
    store_name: str
    terms_url: str | None
    agreement_currencies: list[str]
    reminder_hours_before: int | None = None
    sms_fallback: bool = False


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
    """A message with the link went out: the first one, or the reminder before expiry."""

    type: Literal["link.sent"] = "link.sent"
    link_id: UUID
    channel: Channel
    provider: str
    provider_message_id: str
    expires_at: datetime
    reminder: bool = False


class LinkDeliveryFailed(EventBase):
    type: Literal["link.delivery_failed"] = "link.delivery_failed"
    link_id: UUID
    channel: Channel
    provider: str
    reason: str
    #: The reminder failed; the link itself was delivered before.
    reminder: bool = False


class LinkReported(EventBase):
    """What a provider reported of a sent link (its delivery webhook or status callback)."""

    link_id: UUID
    channel: Channel
    provider: str


class LinkDelivered(LinkReported):
    """The link reached the customer's mailbox or phone."""

    type: Literal["link.delivered"] = "link.delivered"


class LinkBounced(LinkReported):
    """The email was refused by the customer's mail server (bounce, dropped)."""

    type: Literal["link.bounced"] = "link.bounced"
    #: The provider's reason, customer data masked.
    reason: str | None = None


class LinkUndelivered(LinkReported):
    """The SMS did not reach the phone (undelivered, failed)."""

    type: Literal["link.undelivered"] = "link.undelivered"
    #: The provider's error code or reason.
    reason: str | None = None


class LinkResent(EventBase):
    type: Literal["link.resent"] = "link.resent"
    link_id: UUID
    superseded_link_id: UUID | None
    expires_at: datetime


class LinkOpened(EventBase):
    """The customer opened the link; only the first opening moves the order to In
    Progress (``first_open``), every later one is answered too."""

    type: Literal["link.opened"] = "link.opened"
    link_id: UUID
    first_open: bool = True


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
    #: The lines captured and each one's share; empty for an amount-only capture.
    order_lines: list[LineShareOut] = Field(default_factory=list)


class PaymentRefunded(EventBase):
    type: Literal["payment.refunded"] = "payment.refunded"
    #: Gross: what the returned goods are worth (return fees included).
    amount: int
    currency: str
    refunded_total: int
    payment_status: str
    #: Withheld from ``amount``: the customer gets ``refunded_to_customer`` back.
    return_fee_amount: int = 0
    refunded_to_customer: int
    #: The lines refunded and each one's share; empty for an amount-only refund.
    order_lines: list[LineShareOut] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _net_of_fees(cls, data: Any) -> Any:
        # Events stored before return fees were withheld from refunds lack the net.
        if isinstance(data, dict) and "refunded_to_customer" not in data and "amount" in data:
            return {
                **data,
                "refunded_to_customer": data["amount"] - data.get("return_fee_amount", 0),
            }
        return data


class PaymentReleased(EventBase):
    """Authorization given up: by ReleaseRemainingAuthorization, or by an edit that
    lowered the order amount (``reason="edit"``)."""

    type: Literal["payment.released"] = "payment.released"
    amount: int
    currency: str
    payment_status: str
    reason: Literal["release", "edit"] = "release"


class PaymentExpired(EventBase):
    """The reservation ran out: the uncaptured rest is released; what was captured
    stays (``payment_status`` says where the order is now)."""

    type: Literal["payment.expired"] = "payment.expired"
    released_amount: int
    currency: str
    payment_status: str | None = None


class OrderCancelled(EventBase):
    type: Literal["order.cancelled"] = "order.cancelled"
    #: "link" when cancelled before checkout, "payment" when an authorization was voided.
    stage: Literal["link", "payment"]
    released_amount: int
    #: After checkout: CANCELLED, or CAPTURED when part was captured (the rest released).
    payment_status: str | None = None


class ReturnFeeAdded(EventBase):
    """A return fee withheld from the refund published with it (same ``command_id``)."""

    type: Literal["order.return_fee_added"] = "order.return_fee_added"
    #: Events recorded before fees had their own references carry the old default.
    reference: str = "return-fee"
    amount: int
    tax_amount: int
    currency: str
    order_amount: int


class OrderLinesUpdated(EventBase):
    type: Literal["order.lines_updated"] = "order.lines_updated"
    order_amount: int
    order_tax_amount: int
    #: Authorization given up because the amount went down (also a payment.released).
    released_amount: int = 0


class CustomerDataErased(EventBase):
    """A customer's email, phone and name were removed from this order (the money
    records stay). No personal data on the bus: the event names the order only."""

    type: Literal["order.customer_erased"] = "order.customer_erased"


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
        LinkDelivered,
        LinkBounced,
        LinkUndelivered,
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
        CustomerDataErased,
    )
}
