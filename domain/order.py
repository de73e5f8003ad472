"""The order aggregate: every rule about one order, and the events it records.

Guard methods raise ``DomainError`` subclasses with stable codes; they never do I/O.
Amounts are integer minor units of ``currency``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.errors import ActionNotAllowed, AmountError, LinkError, ValidationFailed
from domain.expiry import check_link_expiry, link_deadline
from domain.ledger import Balance, EntryKind, LedgerEntry, ReleaseReason, balance, payment_status
from domain.lines import OrderLine, order_totals
from domain.links import Delivery, Link
from domain.status import (
    LinkAction,
    LinkStatus,
    PaymentAction,
    PaymentStatus,
    can,
    ensure_payment_action,
    next_link_status,
)
from messages import events as ev
from messages.common import EventBase, LineType


@dataclass(slots=True)
class CustomerContact:
    """Personal data: never put it in logs, exception messages or events."""

    email: str | None
    phone: str | None
    name: str | None = None

    @property
    def channel(self) -> str:
        return "email" if self.email else "sms"


@dataclass(slots=True)
class Order:
    order_id: UUID
    store_id: str
    created_by: str
    created_at: datetime
    customer: CustomerContact
    purchase_country: str
    currency: str
    merchant_reference1: str
    merchant_reference2: str | None
    lines: tuple[OrderLine, ...]
    auto_capture: bool
    link_status: LinkStatus = LinkStatus.CREATED
    links: list[Link] = field(default_factory=list)
    authorization_id: str | None = None
    completed_at: datetime | None = None
    reservation_expires_at: datetime | None = None
    ledger: list[LedgerEntry] = field(default_factory=list)
    #: Events recorded by the last command, drained by the unit of work.
    events: list[EventBase] = field(default_factory=list)
    #: Command that is being applied (stamped on events as their cause).
    _cause: UUID | None = None
    _now: datetime | None = None

    # ---- derived state -------------------------------------------------------

    @property
    def order_amount(self) -> int:
        return order_totals(self.lines).order_amount

    @property
    def order_tax_amount(self) -> int:
        return order_totals(self.lines).order_tax_amount

    @property
    def channel(self) -> str:
        return self.customer.channel

    @property
    def balance(self) -> Balance:
        return balance(self.ledger)

    @property
    def payment_status(self) -> PaymentStatus | None:
        if self.link_status is not LinkStatus.COMPLETED:
            return None
        return payment_status(self.balance, self.order_amount)

    @property
    def status(self) -> str:
        """What the order history shows: the link status, then the payment status."""
        ps = self.payment_status
        return ps.value if ps is not None else self.link_status.value

    @property
    def current_link(self) -> Link | None:
        return self.links[-1] if self.links else None

    @property
    def link_expires_at(self) -> datetime | None:
        link = self.current_link
        return link.expires_at if link else None

    @property
    def link_due_at(self) -> datetime | None:
        """When the link expiry applies, while the link is still live."""
        return link_deadline(self.link_status, self.link_expires_at)

    @property
    def reservation_due_at(self) -> datetime | None:
        """When the reservation expiry applies, while some authorization is reserved."""
        status = self.payment_status
        if status is None or not can(status, PaymentAction.EXPIRE):
            return None
        if self.balance.remaining(self.order_amount) <= 0:
            return None
        return self.reservation_expires_at

    # ---- plumbing --------------------------------------------------------------

    def begin(self, command_id: UUID, now: datetime) -> Order:
        self._cause, self._now = command_id, now
        return self

    def _at(self) -> datetime:
        assert self._now is not None, "call Order.begin() before applying a command"
        return self._now

    def _record(self, cls: type[EventBase], **data: Any) -> None:
        self.events.append(
            cls(
                event_id=uuid.uuid4(),
                occurred_at=self._at(),
                command_id=self._cause,
                order_id=self.order_id,
                store_id=self.store_id,
                **data,
            )
        )

    def _entry(self, kind: EntryKind, amount: int, **extra: Any) -> None:
        self.ledger.append(
            LedgerEntry(uuid.uuid4(), kind, amount, self._at(), self._cause, **extra)
        )

    def _require_payment(self, action: PaymentAction) -> PaymentStatus:
        status = self.payment_status
        if status is None:
            raise ActionNotAllowed(
                f"cannot {action.value.replace('_', ' ')} before checkout is completed "
                f"(link status {self.link_status.value})"
            )
        ensure_payment_action(status, action)
        return status

    def check_invariants(self) -> None:
        """DESIGN section 1; called after every command (and by the property tests)."""
        b, amount = self.balance, self.order_amount
        assert 0 <= b.captured <= amount, (b, amount)
        assert 0 <= b.refunded <= b.captured, b
        assert b.remaining(amount) >= 0 or self.link_status is not LinkStatus.COMPLETED, b
        if self.link_status is LinkStatus.COMPLETED:
            assert b.authorized >= b.captured - self._return_fees(), b

    def _return_fees(self) -> int:
        return sum(e.amount for e in self.ledger if e.kind is EntryKind.RETURN_FEE)

    def record_created(self) -> None:
        link = self.current_link
        assert link is not None
        self._record(
            ev.OrderCreated,
            created_by=self.created_by,
            purchase_country=self.purchase_country,
            currency=self.currency,
            order_amount=self.order_amount,
            order_tax_amount=self.order_tax_amount,
            channel=self.channel,
            auto_capture=self.auto_capture,
            merchant_reference1=self.merchant_reference1,
            merchant_reference2=self.merchant_reference2,
            link_expires_at=link.expires_at,
        )

    # ---- link axis -----------------------------------------------------------------

    def issue_link(self, link_id: UUID, token_hash: str, ttl: timedelta) -> Link:
        now = self._at()
        for old in self.links:
            old.superseded = True
        link = Link(link_id, token_hash, created_at=now, expires_at=now + ttl)
        self.links.append(link)
        return link

    def resend_link(self, link_id: UUID, token_hash: str, ttl: timedelta) -> Link:
        self.link_status = next_link_status(self.link_status, LinkAction.RESEND)
        previous = self.current_link
        link = self.issue_link(link_id, token_hash, ttl)
        self._record(
            ev.LinkResent,
            link_id=link.link_id,
            superseded_link_id=previous.link_id if previous else None,
            expires_at=link.expires_at,
        )
        return link

    def link_for_delivery(self, link_id: UUID, token_hash: str) -> Link:
        link = self.current_link
        if link is None or link.link_id != link_id or link.token_hash != token_hash:
            raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
        next_link_status(self.link_status, LinkAction.SEND)
        return link

    def mark_link_sent(self, link: Link, provider: str, provider_message_id: str) -> None:
        link.delivery = Delivery.SENT
        self._record(
            ev.LinkSent,
            link_id=link.link_id,
            channel=self.channel,
            provider=provider,
            provider_message_id=provider_message_id,
            expires_at=link.expires_at,
        )

    def mark_link_undeliverable(self, link: Link, provider: str, reason: str) -> None:
        link.delivery = Delivery.FAILED
        self._record(
            ev.LinkDeliveryFailed,
            link_id=link.link_id,
            channel=self.channel,
            provider=provider,
            reason=reason,
        )

    def _live_link(self, token_hash: str) -> Link:
        """The link a customer's token names, or the precise reason it is dead."""
        link = next((lk for lk in self.links if lk.token_hash == token_hash), None)
        if link is None:
            raise LinkError("unknown payment link", code="LINK_UNKNOWN")
        if link is not self.current_link:
            raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
        if self.link_status is LinkStatus.CANCELLED:
            raise LinkError("the order was cancelled", code="LINK_CANCELLED")
        if self.link_status is LinkStatus.COMPLETED:
            raise LinkError("the purchase was already placed", code="LINK_ALREADY_COMPLETED")
        if self.link_status is LinkStatus.EXPIRED or self._at() >= link.expires_at:
            raise LinkError("the payment link has expired", code="LINK_EXPIRED")
        return link

    def open_link(self, token_hash: str) -> None:
        link = self._live_link(token_hash)
        first_open = self.link_status is LinkStatus.CREATED
        self.link_status = next_link_status(self.link_status, LinkAction.OPEN)
        if first_open:
            self._record(ev.LinkOpened, link_id=link.link_id)

    def complete_checkout(
        self,
        token_hash: str,
        authorization_id: str,
        authorized_amount: int,
        currency: str,
        reservation_ttl: timedelta,
    ) -> None:
        self._live_link(token_hash)
        if currency != self.currency:
            raise AmountError(
                f"checkout currency {currency} differs from the order's {self.currency}",
                code="CURRENCY_MISMATCH",
            )
        if authorized_amount != self.order_amount:
            raise AmountError(
                f"authorized {authorized_amount} but the order amount is {self.order_amount}",
                code="AUTHORIZATION_AMOUNT_MISMATCH",
            )
        self.link_status = next_link_status(self.link_status, LinkAction.COMPLETE)
        now = self._at()
        self.authorization_id = authorization_id
        self.completed_at = now
        self.reservation_expires_at = now + reservation_ttl
        self._entry(EntryKind.AUTHORIZATION, authorized_amount)
        self._record(
            ev.OrderCompleted,
            authorization_id=authorization_id,
            authorized_amount=authorized_amount,
            currency=self.currency,
            auto_capture=self.auto_capture,
            reservation_expires_at=self.reservation_expires_at,
        )
        if self.auto_capture:
            self._capture(self.order_amount, (), None, auto=True)

    def expire_link(self, link_id: UUID) -> None:
        link = self.current_link
        if link is None or link.link_id != link_id:
            raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
        self.link_status = check_link_expiry(
            self.link_status, link.link_id, link_id, link.expires_at, self._at()
        )
        self._record(ev.LinkExpired, link_id=link.link_id, expired_at=link.expires_at)

    # ---- payment axis ---------------------------------------------------------------

    def cancel(self) -> None:
        if self.link_status is not LinkStatus.COMPLETED:
            self.link_status = next_link_status(self.link_status, LinkAction.CANCEL)
            self._record(ev.OrderCancelled, stage="link", released_amount=0)
            return
        self._require_payment(PaymentAction.CANCEL)
        remaining = self.balance.remaining(self.order_amount)
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.CANCEL)
        self._record(ev.OrderCancelled, stage="payment", released_amount=remaining)

    def _amount_from(
        self, amount: int | None, lines: tuple[OrderLine, ...], default: int
    ) -> tuple[int, tuple[str, ...]]:
        refs = tuple(line.reference for line in lines)
        known = {line.reference for line in self.lines}
        unknown = [r for r in refs if r not in known]
        if unknown:
            raise ValidationFailed(
                f"order has no line with reference {unknown[0]!r}", code="LINE_NOT_IN_ORDER"
            )
        if lines:
            by_lines = sum(line.total_amount for line in lines)
            if amount is not None and amount != by_lines:
                raise AmountError(
                    f"amount {amount} differs from the sum of the given lines {by_lines}",
                    code="AMOUNT_LINES_MISMATCH",
                )
            amount = by_lines
        if amount is None:
            amount = default
        if amount <= 0:
            raise AmountError("the amount must be positive", code="AMOUNT_INVALID")
        return amount, refs

    def capture(
        self, amount: int | None, lines: tuple[OrderLine, ...], description: str | None
    ) -> None:
        self._require_payment(PaymentAction.CAPTURE)
        remaining = self.balance.remaining(self.order_amount)
        value, refs = self._amount_from(amount, lines, remaining)
        if value > remaining:
            raise AmountError(
                f"capture of {value} exceeds the remaining authorization {remaining}",
                code="CAPTURE_EXCEEDS_REMAINING",
            )
        self._capture(value, refs, description, auto=False)

    def _capture(
        self, amount: int, refs: tuple[str, ...], description: str | None, *, auto: bool
    ) -> None:
        self._entry(EntryKind.CAPTURE, amount, line_references=refs, description=description)
        self._record(
            ev.PaymentCaptured,
            amount=amount,
            currency=self.currency,
            captured_total=self.balance.captured,
            payment_status=self.status,
            auto_capture=auto,
        )

    def refund(
        self, amount: int | None, lines: tuple[OrderLine, ...], description: str | None
    ) -> None:
        self._require_payment(PaymentAction.REFUND)
        refundable = self.balance.refundable
        value, refs = self._amount_from(amount, lines, refundable)
        if value > refundable:
            raise AmountError(
                f"refund of {value} exceeds the captured and not yet refunded {refundable}",
                code="REFUND_EXCEEDS_CAPTURED",
            )
        self._entry(EntryKind.REFUND, value, line_references=refs, description=description)
        self._record(
            ev.PaymentRefunded,
            amount=value,
            currency=self.currency,
            refunded_total=self.balance.refunded,
            payment_status=self.status,
        )

    def release_remaining(self) -> None:
        self._require_payment(PaymentAction.RELEASE)
        remaining = self.balance.remaining(self.order_amount)
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.RELEASE)
        self._record(
            ev.PaymentReleased, amount=remaining, currency=self.currency, payment_status=self.status
        )

    def expire_authorization(self) -> None:
        self._require_payment(PaymentAction.EXPIRE)
        assert self.reservation_expires_at is not None
        if self._at() < self.reservation_expires_at:
            raise ActionNotAllowed(
                f"the reservation is valid until {self.reservation_expires_at.isoformat()}",
                code="RESERVATION_NOT_DUE",
            )
        remaining = self.balance.remaining(self.order_amount)
        if remaining == 0:
            raise ActionNotAllowed("nothing left reserved to expire", code="NOTHING_RESERVED")
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.EXPIRY)
        self._record(ev.PaymentExpired, released_amount=remaining, currency=self.currency)

    def add_return_fee(self, fee: OrderLine) -> None:
        self._require_payment(PaymentAction.ADD_RETURN_FEE)
        if fee.type is not LineType.RETURN_FEE or fee.total_amount <= 0:
            raise ValidationFailed("a return fee is a positive return_fee line")
        self.lines = (*self.lines, fee)
        self._entry(EntryKind.RETURN_FEE, fee.total_amount, line_references=(fee.reference,))
        self._record(
            ev.ReturnFeeAdded,
            amount=fee.total_amount,
            tax_amount=fee.total_tax_amount,
            currency=self.currency,
            order_amount=self.order_amount,
        )

    def update_lines(self, lines: tuple[OrderLine, ...]) -> None:
        status = self._require_payment(PaymentAction.EDIT_LINES)
        new_amount = order_totals(lines).order_amount
        b = self.balance
        if new_amount > b.authorized:
            raise AmountError(
                f"new order amount {new_amount} exceeds the authorized {b.authorized}",
                code="AMOUNT_EXCEEDS_AUTHORIZATION",
            )
        if new_amount < b.captured + b.released:
            raise AmountError(
                f"new order amount {new_amount} is below what is already captured "
                f"({b.captured}) or released ({b.released})",
                code="ORDER_AMOUNT_BELOW_CAPTURED",
            )
        if status is PaymentStatus.PART_CAPTURED:
            self._keep_captured_lines(lines)
        self.lines = lines
        self._record(
            ev.OrderLinesUpdated,
            order_amount=self.order_amount,
            order_tax_amount=self.order_tax_amount,
        )

    def _keep_captured_lines(self, lines: tuple[OrderLine, ...]) -> None:
        """Part-captured: only uncaptured lines may change (seed 004)."""
        captured_refs = {
            r for e in self.ledger if e.kind is EntryKind.CAPTURE for r in e.line_references
        }
        old = {line.reference: line for line in self.lines}
        new = {line.reference: line for line in lines}
        for ref in captured_refs:
            if old.get(ref) != new.get(ref):
                raise ActionNotAllowed(
                    f"line {ref!r} is captured and cannot be edited", code="LINE_ALREADY_CAPTURED"
                )

    def update_customer(self, email: str | None, phone: str | None, name: str | None) -> None:
        self._require_payment(PaymentAction.EDIT_CUSTOMER)
        changed = []
        if email is not None:
            self.customer.email, self.customer.phone = email, None
            changed.append("email")
        if phone is not None:
            self.customer.phone, self.customer.email = phone, None
            changed.append("phone")
        if email is not None and phone is not None:
            raise ValidationFailed("give either email or phone, not both")
        if name is not None:
            self.customer.name = name
            changed.append("name")
        self._record(ev.CustomerDetailsUpdated, changed_fields=changed)
