"""The two status axes and what each status allows, as data.

Link status follows seed 000 (Created, In Progress, Completed, Cancelled, Expired);
payment status follows seed 004 and is derived from the ledger (``domain.ledger``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from domain.errors import ActionNotAllowed


class LinkStatus(StrEnum):
    CREATED = "CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class PaymentStatus(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    PART_CAPTURED = "PART_CAPTURED"
    CAPTURED = "CAPTURED"
    PART_REFUNDED = "PART_REFUNDED"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class LinkAction(StrEnum):
    SEND = "send"
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRE = "expire"
    CANCEL = "cancel"
    RESEND = "resend"


class PaymentAction(StrEnum):
    EDIT_LINES = "edit_lines"
    EDIT_CUSTOMER = "edit_customer"
    CAPTURE = "capture"
    CANCEL = "cancel"
    RELEASE = "release"
    REFUND = "refund"
    ADD_RETURN_FEE = "add_return_fee"
    #: Not a merchant action: the reservation ran out (scheduler).
    EXPIRE = "expire"


#: (link status, action) -> next link status. Absent pairs are refused.
LINK_TRANSITIONS: Mapping[tuple[LinkStatus, LinkAction], LinkStatus] = {
    (LinkStatus.CREATED, LinkAction.SEND): LinkStatus.CREATED,
    (LinkStatus.CREATED, LinkAction.OPEN): LinkStatus.IN_PROGRESS,
    (LinkStatus.IN_PROGRESS, LinkAction.OPEN): LinkStatus.IN_PROGRESS,
    (LinkStatus.CREATED, LinkAction.COMPLETE): LinkStatus.COMPLETED,
    (LinkStatus.IN_PROGRESS, LinkAction.COMPLETE): LinkStatus.COMPLETED,
    (LinkStatus.CREATED, LinkAction.EXPIRE): LinkStatus.EXPIRED,
    (LinkStatus.IN_PROGRESS, LinkAction.EXPIRE): LinkStatus.EXPIRED,
    (LinkStatus.CREATED, LinkAction.CANCEL): LinkStatus.CANCELLED,
    (LinkStatus.IN_PROGRESS, LinkAction.CANCEL): LinkStatus.CANCELLED,
    (LinkStatus.CREATED, LinkAction.RESEND): LinkStatus.CREATED,
    (LinkStatus.IN_PROGRESS, LinkAction.RESEND): LinkStatus.CREATED,
    (LinkStatus.EXPIRED, LinkAction.RESEND): LinkStatus.CREATED,
}

_A = PaymentAction
#: Seed 004, "Actions available on ...": the merchant actions per payment status.
#: EXPIRE is the scheduler's, allowed while some authorization is still reserved.
PAYMENT_ACTIONS: Mapping[PaymentStatus, frozenset[PaymentAction]] = {
    PaymentStatus.AUTHORIZED: frozenset(
        {_A.EDIT_LINES, _A.EDIT_CUSTOMER, _A.CAPTURE, _A.CANCEL, _A.EXPIRE}
    ),
    PaymentStatus.PART_CAPTURED: frozenset(
        {_A.CAPTURE, _A.RELEASE, _A.REFUND, _A.EDIT_LINES, _A.EXPIRE}
    ),
    PaymentStatus.CAPTURED: frozenset({_A.REFUND, _A.ADD_RETURN_FEE}),
    PaymentStatus.PART_REFUNDED: frozenset({_A.REFUND, _A.EXPIRE}),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.EXPIRED: frozenset(),
}


def next_link_status(status: LinkStatus, action: LinkAction) -> LinkStatus:
    try:
        return LINK_TRANSITIONS[(status, action)]
    except KeyError:
        raise ActionNotAllowed(
            f"cannot {action.value} a payment link whose status is {status.value}"
        ) from None


def can(status: PaymentStatus, action: PaymentAction) -> bool:
    return action in PAYMENT_ACTIONS[status]


def ensure_payment_action(status: PaymentStatus, action: PaymentAction) -> None:
    if not can(status, action):
        allowed = ", ".join(sorted(a.value for a in PAYMENT_ACTIONS[status])) or "none"
        raise ActionNotAllowed(
            f"cannot {action.value.replace('_', ' ')} an order whose payment status is "
            f"{status.value} (allowed: {allowed})"
        )
