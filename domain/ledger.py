"""The append-only payment ledger, and the payment status derived from it.

Nothing stores the payment status: it is a function of the entries and the order
amount, so there is only one truth (DESIGN section 1). Entries that name order lines
carry each line's share (:class:`LineShare`), so the ledger answers per line as well
as per order (see ``domain.line_ledger``).
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
    #: Gross: what the returned goods are worth, return fees included.
    REFUND = "refund"
    RELEASE = "release"
    #: Withheld from the refund of the same command (Klarna's return_fee line).
    RETURN_FEE = "return_fee"


class ReleaseReason(StrEnum):
    CANCEL = "cancel"
    RELEASE = "release"
    EXPIRY = "expiry"
    #: An edit lowered the order amount: the authorization shrinks by the difference.
    EDIT = "edit"


@dataclass(frozen=True, slots=True)
class LineShare:
    """One order line's part of a capture or refund, computed from the order's line
    (never taken from the command); or, on a return fee entry, the fee line itself."""

    reference: str
    quantity: int
    #: Minor units, tax included; negative for discount-like lines.
    amount: int
    tax_amount: int


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: UUID
    kind: EntryKind
    #: Always positive, in minor units of the order currency.
    amount: int
    at: datetime
    command_id: UUID | None = None
    reason: ReleaseReason | None = None
    #: The lines a capture or refund named, with their shares; empty for amount-only.
    lines: tuple[LineShare, ...] = field(default=())
    description: str | None = None

    @property
    def line_references(self) -> tuple[str, ...]:
        return tuple(share.reference for share in self.lines)


@dataclass(frozen=True, slots=True)
class Balance:
    authorized: int
    captured: int
    #: Gross refunds; the customer got ``refunded − fees`` back.
    refunded: int
    #: Released by cancel, release or reservation expiry.
    released: int
    #: Given up by edits that lowered the order amount.
    reduced: int
    #: Return fees withheld from refunds.
    fees: int
    #: Whether the reservation ran out (an expiry release exists).
    expired: bool

    def remaining(self, order_amount: int) -> int:
        """Authorization still reserved: ``order_amount − captured − released``."""
        return order_amount - self.captured - self.released

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded

    @property
    def charged(self) -> int:
        """What the customer pays in the end: captured, less refunds, plus fees withheld."""
        return self.captured - self.refunded + self.fees


def balance(entries: tuple[LedgerEntry, ...] | list[LedgerEntry]) -> Balance:
    totals = dict.fromkeys(EntryKind, 0)
    reduced = 0
    expired = False
    for e in entries:
        if e.reason is ReleaseReason.EDIT:
            reduced += e.amount
            continue
        totals[e.kind] += e.amount
        expired = expired or e.reason is ReleaseReason.EXPIRY
    return Balance(
        authorized=totals[EntryKind.AUTHORIZATION],
        captured=totals[EntryKind.CAPTURE],
        refunded=totals[EntryKind.REFUND],
        released=totals[EntryKind.RELEASE],
        reduced=reduced,
        fees=totals[EntryKind.RETURN_FEE],
        expired=expired,
    )


def payment_status(b: Balance, order_amount: int) -> PaymentStatus:
    """Seed 004's statuses, from the balance alone.

    EXPIRED is a reservation that ran out with nothing captured; one that ran out after
    a part capture released only the rest, and the order is CAPTURED (or refunded).
    """
    if b.expired and b.captured == 0:
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
