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
    #: The reminder before expiry: only to a customer who has not opened the link.
    REMIND = "remind"


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
    (LinkStatus.CREATED, LinkAction.REMIND): LinkStatus.CREATED,
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
#: What money is still reserved or refundable adds to these (:func:`allowed_actions`).
PAYMENT_ACTIONS: Mapping[PaymentStatus, frozenset[PaymentAction]] = {
    PaymentStatus.AUTHORIZED: frozenset({_A.EDIT_LINES, _A.EDIT_CUSTOMER, _A.CAPTURE, _A.CANCEL}),
    # Seed: "Cancel / Release the uncaptured portion" is one action here.
    PaymentStatus.PART_CAPTURED: frozenset(
        {_A.CAPTURE, _A.CANCEL, _A.RELEASE, _A.REFUND, _A.EDIT_LINES}
    ),
    PaymentStatus.CAPTURED: frozenset({_A.REFUND, _A.ADD_RETURN_FEE}),
    PaymentStatus.PART_REFUNDED: frozenset({_A.REFUND}),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.EXPIRED: frozenset(),
}

#: While some authorization is reserved it can be captured or let go (DESIGN §1, "no
#: money is ever stranded"): cancelled, or released once part of it is captured (on an
#: Authorized order, seed 004's way to let go is Cancel); the scheduler's reservation
#: expiry is the other way.
RESERVED_ACTIONS: frozenset[PaymentAction] = frozenset({_A.CAPTURE, _A.CANCEL, _A.EXPIRE})
#: While something captured is not refunded it can be refunded, with or without a
#: return fee withheld (a return fee is part of a refund), also after expiry.
REFUNDABLE_ACTIONS: frozenset[PaymentAction] = frozenset({_A.REFUND, _A.ADD_RETURN_FEE})


def allowed_actions(
    status: PaymentStatus, *, reserved: int, refundable: int
) -> frozenset[PaymentAction]:
    """The seed's actions for ``status``, held to the money facts: an action that moves
    reserved money needs some reserved, one that refunds needs something refundable,
    and where money is reserved or refundable the action that moves it is never missing.
    """
    actions = set(PAYMENT_ACTIONS[status])
    if reserved > 0:
        actions |= RESERVED_ACTIONS
        if status is not PaymentStatus.AUTHORIZED:
            actions.add(_A.RELEASE)
    else:
        actions -= RESERVED_ACTIONS | {_A.RELEASE, _A.EDIT_LINES, _A.EDIT_CUSTOMER}
    if refundable > 0:
        actions |= REFUNDABLE_ACTIONS
    else:
        actions -= REFUNDABLE_ACTIONS
    return frozenset(actions)


def next_link_status(status: LinkStatus, action: LinkAction) -> LinkStatus:
    try:
        return LINK_TRANSITIONS[(status, action)]
    except KeyError:
        raise ActionNotAllowed(
            f"cannot {action.value} a payment link whose status is {status.value}"
        ) from None


def ensure_payment_action(
    status: PaymentStatus, action: PaymentAction, *, reserved: int, refundable: int
) -> None:
    allowed = allowed_actions(status, reserved=reserved, refundable=refundable)
    if action not in allowed:
        names = ", ".join(sorted(a.value for a in allowed - {_A.EXPIRE})) or "none"
        raise ActionNotAllowed(
            f"cannot {action.value.replace('_', ' ')} an order whose payment status is "
            f"{status.value} (allowed: {names})"
        )
