"""The append-only payment ledger, and the payment status derived from it.

Nothing stores the payment status: it is a function of the entries and the order
amount, so there is only one truth (DESIGN section 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.status import PaymentStatus


class EntryKind(StrEnum):
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    REFUND = "refund"
    RELEASE = "release"
    RETURN_FEE = "return_fee"


class ReleaseReason(StrEnum):
    CANCEL = "cancel"
    RELEASE = "release"
    EXPIRY = "expiry"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: UUID
    kind: EntryKind
    #: Always positive, in minor units of the order currency.
    amount: int
    at: datetime
    command_id: UUID | None = None
    reason: ReleaseReason | None = None
    #: Line references a capture or refund named, if it named any.
    line_references: tuple[str, ...] = field(default=())
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    authorized: int
    captured: int
    refunded: int
    released: int
    expired: bool

    def remaining(self, order_amount: int) -> int:
        """Authorization still reserved: ``order_amount − captured − released``."""
        return order_amount - self.captured - self.released

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded


def balance(entries: tuple[LedgerEntry, ...] | list[LedgerEntry]) -> Balance:
    totals = dict.fromkeys(EntryKind, 0)
    expired = False
    for e in entries:
        totals[e.kind] += e.amount
        expired = expired or e.reason is ReleaseReason.EXPIRY
    return Balance(
        authorized=totals[EntryKind.AUTHORIZATION],
        captured=totals[EntryKind.CAPTURE] + totals[EntryKind.RETURN_FEE],
        refunded=totals[EntryKind.REFUND],
        released=totals[EntryKind.RELEASE],
        expired=expired,
    )


def payment_status(b: Balance, order_amount: int) -> PaymentStatus:
    """Seed 004's statuses, from the balance alone."""
    if b.expired:
        return PaymentStatus.EXPIRED
    if b.refunded > 0:
        # Fully refunded only when nothing is captured-and-kept nor still reserved.
        settled = b.refunded >= b.captured and b.remaining(order_amount) == 0
        return PaymentStatus.REFUNDED if settled else PaymentStatus.PART_REFUNDED
    if b.captured == 0:
        return PaymentStatus.CANCELLED if b.released > 0 else PaymentStatus.AUTHORIZED
    if b.remaining(order_amount) == 0:
        return PaymentStatus.CAPTURED
    return PaymentStatus.PART_CAPTURED
