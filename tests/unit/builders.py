"""Command builders and a small world that drives them through ``domain.bus.handle`` on the fakes.

``build(CapturePayment, amount=500)`` starts from a minimal valid example of the
command (also what the wire tests parse) and overrides fields. ``World`` holds one
in-memory database, a ``FakeClock`` and the order under test, and knows how to bring
that order into any link or payment status through commands only.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from domain.bus import Outcome, handle
from domain.order import Order
from domain.ports import LINK_TTL, RESERVATION_TTL, NotificationRecord
from domain.status import LinkStatus, PaymentStatus
from messages import commands as c
from messages.common import CommandBase, EventBase, Role
from messages.events import OrderRejected
from tests.fakes import Database, FakeClock, FakeUnitOfWork, RecordingNotifier, make_context

C = TypeVar("C", bound=CommandBase)

STORE_ID = "store-1"
OTHER_STORE_ID = "store-2"
T0 = FakeClock().now()
#: A well-formed token that no order ever issued.
UNKNOWN_TOKEN = "u" * 43


def actor(role: Role = Role.ADMIN, stores: Sequence[str] = (STORE_ID,)) -> dict[str, Any]:
    return {"user_id": f"user-{role.name.lower()}", "role": role.value, "store_ids": list(stores)}


def line(reference: str, unit_price: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Item {reference}",
        "reference": reference,
        "quantity": quantity,
        "unit_price": unit_price,
        "tax_rate": 2500,
        **extra,
    }


#: The order under test: two lines, 600.00 + 400.00 SEK.
LINES = [line("A", 60_000), line("B", 40_000)]
ORDER_AMOUNT = 100_000
#: The same order with line B cut to 300.00: an edit that lowers the amount.
LINES_CUT = [line("A", 60_000), line("B", 30_000)]

_ORDER = {"actor": actor(), "order_id": str(uuid.UUID(int=1))}

#: A minimal valid payload of every command, without ``command_id`` and ``issued_at``.
MINIMAL: dict[type[CommandBase], dict[str, Any]] = {
    c.ConfigureStore: {
        "actor": actor(),
        "store_id": STORE_ID,
        "store_name": "Shop",
        "terms_url": "https://shop.example/terms",
        "agreement_currencies": ["SEK"],
    },
    c.CreateOrder: {
        **_ORDER,
        "store_id": STORE_ID,
        "customer": {"email": "anna@example.com"},
        "purchase_country": "SE",
        "merchant_reference1": "R1",
        "order_lines": LINES,
    },
    c.SendPaymentLink: {
        "order_id": _ORDER["order_id"],
        "link_id": str(uuid.UUID(int=2)),
        "token": UNKNOWN_TOKEN,
    },
    c.ResendPaymentLink: _ORDER,
    c.ExpirePaymentLink: {"order_id": _ORDER["order_id"], "link_id": str(uuid.UUID(int=2))},
    c.PaymentLinkOpened: {"token": UNKNOWN_TOKEN},
    c.CheckoutCompleted: {
        "token": UNKNOWN_TOKEN,
        "authorization_id": "auth-1",
        "authorized_amount": ORDER_AMOUNT,
        "currency": "SEK",
    },
    c.RecordLinkDelivery: {
        "order_id": _ORDER["order_id"],
        "link_id": str(uuid.UUID(int=2)),
        "channel": "email",
        "provider": "sendgrid",
        "outcome": "delivered",
    },
    c.CapturePayment: _ORDER,
    c.RefundPayment: _ORDER,
    c.CancelOrder: _ORDER,
    c.ReleaseRemainingAuthorization: _ORDER,
    c.AddReturnFee: {**_ORDER, "amount": 5_000, "tax_rate": 2500, "refund_amount": 10_000},
    c.UpdateOrderLines: {**_ORDER, "order_lines": LINES_CUT},
    c.UpdateCustomerDetails: {**_ORDER, "name": "Anna Andersson"},
    c.EraseCustomerData: {"actor": actor(), "store_id": STORE_ID, "email": "anna@example.com"},
    c.ExpireAuthorization: {"order_id": _ORDER["order_id"]},
}


def payload(cls: type[CommandBase], **fields: Any) -> dict[str, Any]:
    """The JSON form of a command: the minimal example, a fresh id, ``fields`` on top."""
    return {
        "command_id": str(uuid.uuid4()),
        "issued_at": T0.isoformat(),
        **copy.deepcopy(MINIMAL[cls]),
        **fields,
    }


def build(cls: type[C], **fields: Any) -> C:
    return cls.model_validate(payload(cls, **fields))


#: Seed 004, "Actions available on ...", written out here independently of domain/.
SEED_PAYMENT_ACTIONS: dict[PaymentStatus, frozenset[str]] = {
    PaymentStatus.AUTHORIZED: frozenset({"edit_lines", "edit_customer", "capture", "cancel"}),
    PaymentStatus.PART_CAPTURED: frozenset({"capture", "release", "refund", "edit_lines"}),
    PaymentStatus.CAPTURED: frozenset({"refund", "add_return_fee"}),
    PaymentStatus.PART_REFUNDED: frozenset({"refund"}),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.EXPIRED: frozenset(),
}


#: What each status allows in the worlds of :meth:`World.in_payment_status`: seed 004's
#: actions, plus what the money facts add (DESIGN §1, "no money is ever stranded"):
#: reserved money can be captured or cancelled (released, once part is captured);
#: refundable money refunded,
#: with or without a return fee withheld.
ALLOWED_PAYMENT_ACTIONS: dict[PaymentStatus, frozenset[str]] = {
    # 1000.00 reserved, nothing captured
    PaymentStatus.AUTHORIZED: SEED_PAYMENT_ACTIONS[PaymentStatus.AUTHORIZED],
    # 300.00 captured, 700.00 reserved
    PaymentStatus.PART_CAPTURED: SEED_PAYMENT_ACTIONS[PaymentStatus.PART_CAPTURED]
    | {"cancel", "add_return_fee"},
    PaymentStatus.CAPTURED: SEED_PAYMENT_ACTIONS[PaymentStatus.CAPTURED],
    # all captured, 100.00 of it refunded
    PaymentStatus.PART_REFUNDED: SEED_PAYMENT_ACTIONS[PaymentStatus.PART_REFUNDED]
    | {"add_return_fee"},
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.EXPIRED: frozenset(),
}


@dataclass
class Watch:
    world: World
    before: tuple[Any, ...]
    mark: int

    @property
    def new_events(self) -> list[EventBase]:
        return self.world.db.events[self.mark :]

    def unchanged(self) -> bool:
        return self.world.snapshot() == self.before

    def assert_refused(self, outcome: Outcome, code: str) -> None:
        """Rejected with ``code``: one order.rejected event naming the command, no change."""
        assert (outcome.status, outcome.code) == ("rejected", code), outcome
        (event,) = self.new_events
        assert isinstance(event, OrderRejected)
        assert (event.code, event.command_id) == (code, outcome.command_id)
        assert self.unchanged()


class World:
    """One store, one order under test, the fakes, and a clock that only moves when told."""

    def __init__(
        self, notifier: RecordingNotifier | None = None, *, store: dict[str, Any] | None = None
    ) -> None:
        #: ConfigureStore fields of this world's store (on top of the minimal example).
        self.store = store or {}
        self.db = Database()
        self.clock = FakeClock()
        self.notifier = notifier or RecordingNotifier()
        self.ctx = make_context(self.clock, self.notifier)
        self.order_id = uuid.uuid4()
        self.sends_dispatched = 0

    # ---- plumbing -----------------------------------------------------------------

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)

    def run(self, command: CommandBase) -> Outcome:
        return handle(command, self.uow, self.ctx)

    def command(self, cls: type[C], **fields: Any) -> C:
        """``cls`` aimed at the order under test, issued now."""
        if "order_id" in cls.model_fields:
            fields.setdefault("order_id", str(self.order_id))
        return build(cls, issued_at=self.clock.now().isoformat(), **fields)

    def do(self, cls: type[CommandBase], **fields: Any) -> Outcome:
        return self.run(self.command(cls, **fields))

    def ok(self, cls: type[CommandBase], **fields: Any) -> Outcome:
        outcome = self.do(cls, **fields)
        assert outcome.status == "accepted", outcome
        return outcome

    @property
    def order(self) -> Order:
        return self.db.orders[self.order_id]

    @property
    def token(self) -> str:
        """The raw token of the newest link (the fakes issue tokens in sequence)."""
        return self.ctx.tokens.issued[-1]  # type: ignore[attr-defined,no-any-return]

    @property
    def link_id(self) -> UUID:
        link = self.order.current_link
        assert link is not None
        return link.link_id

    def pending_sends(self) -> list[c.SendPaymentLink]:
        return [cmd for cmd in self.db.commands if isinstance(cmd, c.SendPaymentLink)]

    def notification(self) -> NotificationRecord:
        return self.db.notifications[self.link_id]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused command must leave alone (its own rejection aside)."""
        orders = copy.deepcopy(self.db.orders)
        return orders, copy.deepcopy(self.db.stores), len(self.db.commands), self.notifier.sent[:]

    def watch(self) -> Watch:
        """Remember the state now, to check later what a command did to it."""
        return Watch(self, self.snapshot(), len(self.db.events))

    # ---- bringing the order into a status -------------------------------------------

    def configure(self, **fields: Any) -> Outcome:
        return self.ok(c.ConfigureStore, **{**self.store, **fields})

    def create(self, **fields: Any) -> Outcome:
        """Create the order under test (the store must be configured)."""
        return self.ok(c.CreateOrder, **fields)

    def deliver(self) -> Outcome:
        """Run the newest SendPaymentLink the outbox holds, as the send-link worker would."""
        return self.run(self.pending_sends()[-1])

    def open(self, token: str | None = None) -> Outcome:
        return self.do(c.PaymentLinkOpened, token=token or self.token)

    def complete(self, token: str | None = None, **fields: Any) -> Outcome:
        fields.setdefault("authorized_amount", self.order.order_amount)
        return self.do(c.CheckoutCompleted, token=token or self.token, **fields)

    def sent_order(self, **create: Any) -> World:
        """Link status CREATED: the order exists and its link went out."""
        self.configure()
        self.create(**create)
        assert self.deliver().status == "accepted"
        return self

    def authorized(self, **create: Any) -> World:
        """Payment status AUTHORIZED: the customer opened the link and paid."""
        self.sent_order(**create)
        assert self.open().status == "accepted"
        assert self.complete().status == "accepted"
        return self

    def in_link_status(self, status: LinkStatus) -> World:
        self.sent_order()
        if status is LinkStatus.IN_PROGRESS:
            self.open()
        elif status is LinkStatus.COMPLETED:
            self.open()
            self.complete()
        elif status is LinkStatus.CANCELLED:
            self.ok(c.CancelOrder)
        elif status is LinkStatus.EXPIRED:
            self.clock.advance(seconds=LINK_TTL.total_seconds())
            self.ok(c.ExpirePaymentLink, link_id=str(self.link_id))
        assert self.order.link_status is status
        return self

    def in_payment_status(self, status: PaymentStatus) -> World:
        self.authorized()
        if status is PaymentStatus.PART_CAPTURED:
            self.ok(c.CapturePayment, amount=30_000)
        elif status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
            self.ok(c.CapturePayment)
        elif status is PaymentStatus.PART_REFUNDED:
            self.ok(c.CapturePayment)
            self.ok(c.RefundPayment, amount=10_000)
        elif status is PaymentStatus.CANCELLED:
            self.ok(c.CancelOrder)
        elif status is PaymentStatus.EXPIRED:
            self.clock.advance(seconds=RESERVATION_TTL.total_seconds() + 1)
            self.ok(c.ExpireAuthorization)
        if status is PaymentStatus.REFUNDED:
            self.ok(c.RefundPayment)
        assert self.order.payment_status is status
        return self
