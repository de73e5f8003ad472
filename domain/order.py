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

from domain.errors import (
    ActionNotAllowed,
    AmountError,
    InvariantViolation,
    LinkError,
    ValidationFailed,
)
from domain.expiry import DueLink, expire, link_deadline
from domain.ledger import (
    Balance,
    EntryKind,
    LedgerEntry,
    LineShare,
    ReleaseReason,
    balance,
    payment_status,
)
from domain.line_ledger import (
    LinePosition,
    LineRequest,
    ensure_unique_references,
    positions,
    rest_of_lines,
    shares_for,
    whole,
)
from domain.lines import OrderLine, order_totals
from domain.links import Delivery, Link
from domain.reminders import RemindableLink, check_reminder
from domain.status import (
    LinkAction,
    LinkStatus,
    PaymentAction,
    PaymentStatus,
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
    #: How the customer is reached; kept when the contact data is erased.
    channel: str = ""

    def __post_init__(self) -> None:
        if not self.channel:
            self.channel = "email" if self.email else "sms"

    @property
    def erased(self) -> bool:
        return self.email is None and self.phone is None

    def erase(self) -> None:
        self.email = self.phone = self.name = None


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
        if self.payment_status is None or self.balance.remaining(self.order_amount) <= 0:
            return None
        return self.reservation_expires_at

    # ---- plumbing --------------------------------------------------------------

    def begin(self, command_id: UUID, now: datetime) -> Order:
        self._cause, self._now = command_id, now
        return self

    def _at(self) -> datetime:
        if self._now is None:
            raise InvariantViolation("call Order.begin() before applying a command")
        return self._now

    def _record(
        self,
        cls: type[EventBase],
        **data: Any,  # Any: the event's own fields, validated by pydantic
    ) -> None:
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

    def _entry(
        self,
        kind: EntryKind,
        amount: int,
        **extra: Any,  # Any: LedgerEntry's optional fields, each typed there
    ) -> None:
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
        b = self.balance
        ensure_payment_action(
            status, action, reserved=b.remaining(self.order_amount), refundable=b.refundable
        )
        return status

    def check_invariants(self) -> None:
        """DESIGN section 1, per order and per line; checked before every write (and by
        the property tests). A violation is a bug, never a customer's problem: it raises
        :class:`InvariantViolation` and nothing is written."""
        b, amount = self.balance, self.order_amount
        _hold(0 <= b.captured <= amount, "captured within the order amount", b, amount)
        _hold(0 <= b.refunded <= b.captured, "refunded within captured", b)
        _hold(0 <= b.fees <= b.refunded, "return fees within refunds", b)
        if self.link_status is LinkStatus.COMPLETED:
            _hold(b.remaining(amount) >= 0, "remaining authorization not negative", b, amount)
            _hold(b.authorized - b.reduced == amount, "authorization equals order amount", b)
        by_ref = {line.reference: line for line in self.lines}
        for entry in self.ledger:
            if entry.lines and entry.kind in (EntryKind.CAPTURE, EntryKind.REFUND):
                _hold(sum(s.amount for s in entry.lines) == entry.amount, "shares sum", entry)
        for ref, pos in self.line_positions.items():
            line = by_ref.get(ref)
            if line is None:
                raise InvariantViolation(f"invariant broken: captured line {ref!r} left the order")
            _hold(
                0 <= pos.refunded.quantity <= pos.captured.quantity <= line.quantity,
                "per line 0 <= refunded <= captured <= ordered (units)",
                ref,
                pos,
            )
            _hold(
                _within(pos.refunded.amount, pos.captured.amount)
                and _within(pos.captured.amount, line.total_amount),
                "per line 0 <= refunded <= captured <= ordered (amounts)",
                ref,
                pos,
            )
            if pos.captured.quantity == line.quantity and line.quantity > 0:
                _hold(pos.captured == whole(line), "a fully captured line sums to it", ref)

    def record_created(self) -> None:
        link = self.current_link
        if link is None:
            raise InvariantViolation("an order is created with its first link issued")
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
        if link.delivery is not Delivery.PENDING:
            # One SendPaymentLink per link (its id follows from the link): another one, with
            # a fresh command id, is not a retry and never reaches the customer twice.
            raise LinkError(
                f"this link was already {link.delivery.value}; resend the link for a new one",
                code="LINK_ALREADY_SENT",
            )
        if self._at() >= link.expires_at:
            # Like open and complete: a link past its 48 hours is dead even before the
            # scheduler has marked it.
            raise LinkError("the payment link has expired", code="LINK_EXPIRED")
        return link

    def link_for_reminder(self, link_id: UUID, token_hash: str) -> Link:
        """The link to remind the customer of, or why not (``domain.reminders``)."""
        link = self.current_link
        current = link.link_id if link is not None and link.token_hash == token_hash else None
        if link is None or current is None:
            raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
        state = RemindableLink(self.link_status, current, link.delivery, link.expires_at)
        check_reminder(state, link_id, self._at())
        return link

    def mark_link_sent(
        self,
        link: Link,
        provider: str,
        provider_message_id: str,
        channel: str | None = None,
        *,
        reminder: bool = False,
    ) -> None:
        if not reminder:  # a reminder is about a link already sent
            link.delivery = Delivery.SENT
        self._record(
            ev.LinkSent,
            link_id=link.link_id,
            channel=channel or self.channel,
            provider=provider,
            provider_message_id=provider_message_id,
            expires_at=link.expires_at,
            reminder=reminder,
        )

    def mark_link_undeliverable(
        self,
        link: Link,
        provider: str,
        reason: str,
        channel: str | None = None,
        *,
        reminder: bool = False,
    ) -> None:
        if not reminder:  # a failed reminder leaves the delivered link as it was
            link.delivery = Delivery.FAILED
        self._record(
            ev.LinkDeliveryFailed,
            link_id=link.link_id,
            channel=channel or self.channel,
            provider=provider,
            reason=reason,
            reminder=reminder,
        )

    def report_delivery(
        self, link: Link, channel: str, provider: str, *, delivered: bool, reason: str | None
    ) -> None:
        """What the provider said became of a sent link: the timeline says it; the
        link's status does not change (a bounced link is still the customer's link)."""
        if delivered:
            self._record(ev.LinkDelivered, link_id=link.link_id, channel=channel, provider=provider)
            return
        failed = ev.LinkBounced if channel == "email" else ev.LinkUndelivered
        self._record(
            failed, link_id=link.link_id, channel=channel, provider=provider, reason=reason
        )

    def can_fall_back_to_sms(self, link: Link) -> bool:
        """A bounced email link may go out again by SMS while nobody has used it: still
        the current link, not opened, not past its deadline, and a phone on file."""
        return (
            link is self.current_link
            and self.link_status is LinkStatus.CREATED
            and self._at() < link.expires_at
            and self.customer.phone is not None
        )

    def fall_back_to_sms(self, link_id: UUID, token_hash: str) -> Link:
        """A new link (the bounced token is not stored) with the bounced one's deadline:
        the customer gets no more time than the first message gave."""
        bounced = self.current_link
        if bounced is None:
            raise InvariantViolation("a fallback replaces a sent link")
        return self.resend_link(link_id, token_hash, bounced.expires_at - self._at())

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
        # Every opening is answered (a reload with a fresh command id too), so the
        # hosted page and upstreams never wait for nothing; first_open tells them apart.
        self._record(ev.LinkOpened, link_id=link.link_id, first_open=first_open)

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
            rest = rest_of_lines(self.lines, {}, refund=False)
            self._capture(self.order_amount, rest, None, auto=True)

    def expire_link(self, link_id: UUID) -> None:
        link = self.current_link
        if link is None:
            raise LinkError("this link was replaced by a newer one", code="LINK_SUPERSEDED")
        state = DueLink(
            self.order_id, self.store_id, self.link_status, link.link_id, link.expires_at
        )
        expiry = expire(state, link_id, self._at(), self._cause)
        self.link_status = expiry.link_status
        self.events.append(expiry.event)

    # ---- payment axis ---------------------------------------------------------------

    @property
    def line_positions(self) -> dict[str, LinePosition]:
        return positions(self.ledger)

    def cancel(self) -> None:
        """Before checkout: the link dies. After: the reservation is let go, all of it
        (Authorized) or the uncaptured rest (Part captured; seed 004's "Cancel / Release
        the uncaptured portion")."""
        if self.link_status is not LinkStatus.COMPLETED:
            self.link_status = next_link_status(self.link_status, LinkAction.CANCEL)
            self._record(ev.OrderCancelled, stage="link", released_amount=0)
            return
        self._require_payment(PaymentAction.CANCEL)
        remaining = self.balance.remaining(self.order_amount)
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.CANCEL)
        self._record(
            ev.OrderCancelled,
            stage="payment",
            released_amount=remaining,
            payment_status=self.status,
        )

    def _by_lines_or_amount(
        self,
        amount: int | None,
        requests: tuple[LineRequest, ...],
        available: int,
        *,
        refund: bool,
    ) -> tuple[int, tuple[LineShare, ...]]:
        """The amount a capture or refund moves and the line shares it records."""
        pos = self.line_positions
        if requests:
            shares = shares_for(requests, self.lines, pos, refund=refund)
            by_lines = sum(share.amount for share in shares)
            if amount is not None and amount != by_lines:
                raise AmountError(
                    f"amount {amount} differs from the {by_lines} the given lines come to",
                    code="AMOUNT_LINES_MISMATCH",
                )
            amount = by_lines
        else:
            amount = available if amount is None else amount
            shares = ()
            # Everything that is left, and nothing earlier was amount-only: the rest of
            # every line, so later line refunds and edits know what was captured.
            rest = rest_of_lines(self.lines, pos, refund=refund)
            if amount == available and sum(share.amount for share in rest) == available:
                shares = rest
        if amount <= 0:
            raise AmountError("the amount must be positive", code="AMOUNT_INVALID")
        return amount, shares

    def capture(
        self, amount: int | None, lines: tuple[LineRequest, ...], description: str | None
    ) -> None:
        self._require_payment(PaymentAction.CAPTURE)
        remaining = self.balance.remaining(self.order_amount)
        value, shares = self._by_lines_or_amount(amount, lines, remaining, refund=False)
        if value > remaining:
            raise AmountError(
                f"capture of {value} exceeds the remaining authorization {remaining}",
                code="CAPTURE_EXCEEDS_REMAINING",
            )
        self._capture(value, shares, description, auto=False)

    def _capture(
        self, amount: int, shares: tuple[LineShare, ...], description: str | None, *, auto: bool
    ) -> None:
        self._entry(EntryKind.CAPTURE, amount, lines=shares, description=description)
        self._record(
            ev.PaymentCaptured,
            amount=amount,
            currency=self.currency,
            captured_total=self.balance.captured,
            payment_status=self.status,
            auto_capture=auto,
            order_lines=_wire_shares(shares),
        )

    def refund(
        self,
        amount: int | None,
        lines: tuple[LineRequest, ...],
        description: str | None,
        fees: tuple[OrderLine, ...] = (),
    ) -> None:
        """Refund what was captured; ``fees`` (return_fee lines) are withheld from it."""
        self._require_payment(PaymentAction.REFUND)
        if fees and amount is None and not lines:
            # A fee alone must not stand for "refund everything": say what is refunded.
            raise ValidationFailed(
                "a refund with a return fee names its amount or its lines",
                code="REFUND_AMOUNT_REQUIRED",
            )
        refundable = self.balance.refundable
        value, shares = self._by_lines_or_amount(amount, lines, refundable, refund=True)
        if value > refundable:
            raise AmountError(
                f"refund of {value} exceeds the captured and not yet refunded {refundable}",
                code="REFUND_EXCEEDS_CAPTURED",
            )
        self._check_fees(fees, value)
        self._entry(EntryKind.REFUND, value, lines=shares, description=description)
        for fee in fees:
            share = LineShare(fee.reference, fee.quantity, fee.total_amount, fee.total_tax_amount)
            self._entry(
                EntryKind.RETURN_FEE, fee.total_amount, lines=(share,), description=fee.name
            )
        fee_total = sum(fee.total_amount for fee in fees)
        self._record(
            ev.PaymentRefunded,
            amount=value,
            currency=self.currency,
            refunded_total=self.balance.refunded,
            payment_status=self.status,
            return_fee_amount=fee_total,
            refunded_to_customer=value - fee_total,
            order_lines=_wire_shares(shares),
        )
        for fee in fees:
            self._record(
                ev.ReturnFeeAdded,
                reference=fee.reference,
                amount=fee.total_amount,
                tax_amount=fee.total_tax_amount,
                currency=self.currency,
                order_amount=self.order_amount,
            )

    def _check_fees(self, fees: tuple[OrderLine, ...], refunded: int) -> None:
        """Klarna's return fee: withheld from a refund, never more than it, never a line
        reference the order or an earlier fee already uses."""
        for fee in fees:
            if fee.type is not LineType.RETURN_FEE or fee.total_amount <= 0:
                raise ValidationFailed(
                    f"return fee {fee.reference!r} must be a return_fee line with a positive "
                    "amount",
                    code="RETURN_FEE_INVALID",
                )
        new = [fee.reference for fee in fees]
        ensure_unique_references(new)
        taken = sorted(set(self._used_references()).intersection(new))
        if taken:
            raise ValidationFailed(
                f"return fee reference {taken[0]!r} is already used on this order",
                code="LINE_REFERENCE_DUPLICATE",
            )
        total = sum(fee.total_amount for fee in fees)
        if total > refunded:
            raise AmountError(
                f"return fees of {total} exceed the refund of {refunded} they are withheld from",
                code="RETURN_FEE_EXCEEDS_REFUND",
            )

    def _used_references(self) -> list[str]:
        """Line references taken on this order: its lines and every return fee so far."""
        fees = [s.reference for e in self.ledger if e.kind is EntryKind.RETURN_FEE for s in e.lines]
        return [line.reference for line in self.lines] + fees

    def next_return_fee_reference(self) -> str:
        """``return-fee``, then ``return-fee-2``, ...: the first not used on this order."""
        used = set(self._used_references())
        candidates = ("return-fee", *(f"return-fee-{n}" for n in range(2, len(used) + 3)))
        return next(ref for ref in candidates if ref not in used)

    def add_return_fee(self, fee: OrderLine, refund_amount: int) -> None:
        """Seed 004's "Add return fee" as Klarna has it: a refund of ``refund_amount``
        with the fee withheld from it."""
        self._require_payment(PaymentAction.ADD_RETURN_FEE)
        self.refund(refund_amount, (), None, fees=(fee,))

    def release_remaining(self) -> None:
        self._require_payment(PaymentAction.RELEASE)
        remaining = self.balance.remaining(self.order_amount)
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.RELEASE)
        self._record(
            ev.PaymentReleased,
            amount=remaining,
            currency=self.currency,
            payment_status=self.status,
            reason="release",
        )

    def expire_authorization(self) -> None:
        """The reservation ran out: only the uncaptured rest is released; what was
        captured stays captured and refundable."""
        self._require_payment(PaymentAction.EXPIRE)
        if self.reservation_expires_at is None or self._at() < self.reservation_expires_at:
            raise ActionNotAllowed(
                f"the reservation is valid until {_iso(self.reservation_expires_at)}",
                code="RESERVATION_NOT_DUE",
            )
        remaining = self.balance.remaining(self.order_amount)
        self._entry(EntryKind.RELEASE, remaining, reason=ReleaseReason.EXPIRY)
        self._record(
            ev.PaymentExpired,
            released_amount=remaining,
            currency=self.currency,
            payment_status=self.status,
        )

    def update_lines(self, lines: tuple[OrderLine, ...]) -> None:
        """Replace the lines. Only uncaptured lines change (seed 004); the new amount can
        neither go above the authorization held (paylink cannot ask the customer's
        payment method for more: a higher amount means a new order) nor below what is
        captured. A lower amount gives up the difference of the authorization, recorded
        as a release with its event."""
        self._require_payment(PaymentAction.EDIT_LINES)
        ensure_editable_lines(lines)
        new_amount = order_totals(lines).order_amount
        b, old_amount = self.balance, self.order_amount
        if new_amount > old_amount:
            raise AmountError(
                f"new order amount {new_amount} exceeds the authorized {old_amount}",
                code="AMOUNT_EXCEEDS_AUTHORIZATION",
            )
        if new_amount < b.captured + b.released:
            raise AmountError(
                f"new order amount {new_amount} is below what is already captured "
                f"({b.captured}) or released ({b.released})",
                code="ORDER_AMOUNT_BELOW_CAPTURED",
            )
        self._keep_captured_lines(lines)
        self.lines = lines
        self._record(
            ev.OrderLinesUpdated,
            order_amount=self.order_amount,
            order_tax_amount=self.order_tax_amount,
            released_amount=old_amount - new_amount,
        )
        if new_amount < old_amount:
            self._entry(EntryKind.RELEASE, old_amount - new_amount, reason=ReleaseReason.EDIT)
            self._record(
                ev.PaymentReleased,
                amount=old_amount - new_amount,
                currency=self.currency,
                payment_status=self.status,
                reason="edit",
            )

    def _keep_captured_lines(self, lines: tuple[OrderLine, ...]) -> None:
        """Only uncaptured lines may change (seed 004): a line with anything captured by
        lines stays exactly as it is."""
        new = {line.reference: line for line in lines}
        old = {line.reference: line for line in self.lines}
        for ref, pos in self.line_positions.items():
            if pos.captured.touched and old.get(ref) != new.get(ref):
                raise ActionNotAllowed(
                    f"line {ref!r} is captured and cannot be edited", code="LINE_ALREADY_CAPTURED"
                )

    def erase_customer(self) -> None:
        """A privacy request: the customer's email, phone and name go; the money records,
        lines and links stay. Allowed in every status; a link is never sent again."""
        self.customer.erase()
        self._record(ev.CustomerDataErased)

    def update_customer(self, email: str | None, phone: str | None, name: str | None) -> None:
        self._require_payment(PaymentAction.EDIT_CUSTOMER)
        if email is not None and phone is not None:
            raise ValidationFailed("give either email or phone, not both")
        changed = []
        if email is not None:
            self.customer.email, self.customer.phone, self.customer.channel = email, None, "email"
            changed.append("email")
        if phone is not None:
            self.customer.phone, self.customer.email, self.customer.channel = phone, None, "sms"
            changed.append("phone")
        if name is not None:
            self.customer.name = name
            changed.append("name")
        self._record(ev.CustomerDetailsUpdated, changed_fields=changed)


def ensure_editable_lines(lines: tuple[OrderLine, ...]) -> None:
    """Lines an order is created or edited with: unique references, no return fees
    (those belong to refunds, in order management)."""
    ensure_unique_references(line.reference for line in lines)
    for line in lines:
        if line.type is LineType.RETURN_FEE:
            raise ValidationFailed(
                f"line {line.reference!r}: return_fee lines belong to refunds "
                "(RefundPayment or AddReturnFee), not to an order's lines",
                code="LINE_TYPE_NOT_ALLOWED",
            )


def _wire_shares(shares: tuple[LineShare, ...]) -> list[ev.LineShareOut]:
    return [
        ev.LineShareOut(
            reference=s.reference, quantity=s.quantity, amount=s.amount, tax_amount=s.tax_amount
        )
        for s in shares
    ]


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "(no reservation)"


def _within(part: int, whole_amount: int) -> bool:
    """``part`` lies between 0 and ``whole_amount``, for negative lines as for positive."""
    return 0 <= part <= whole_amount if whole_amount >= 0 else whole_amount <= part <= 0


def _hold(condition: bool, rule: str, *context: object) -> None:
    if not condition:
        raise InvariantViolation(f"invariant broken: {rule}: {context!r}")
