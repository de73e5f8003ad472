"""Random command sequences over an order, against a model kept here independently.

The machine issues every kind of command through ``dispatch`` on the fakes, in any
order, with duplicates and conflicting re-uses of command ids, and moves the clock
across the link and reservation deadlines. Before each command the model predicts
the outcome (accepted, or the rejection code); after each step the DESIGN section 1
invariants are checked on the stored order, and its amounts and statuses are compared
with the model's. Once an order can change no more, the run goes on with a new one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.dispatch import Outcome
from domain.handlers import LINK_TTL, RESERVATION_TTL
from domain.status import LinkStatus, PaymentStatus
from messages import commands as c
from messages.common import CommandBase
from messages.events import OrderRejected
from tests.unit.builders import UNKNOWN_TOKEN, World, line

L, P = LinkStatus, PaymentStatus
NOT_ALLOWED = "ACTION_NOT_ALLOWED_IN_STATUS"
#: Seed 004's actions, as the model sees them (plus the scheduler's expiry).
CAPTURABLE = {P.AUTHORIZED, P.PART_CAPTURED}
REFUNDABLE = {P.PART_CAPTURED, P.CAPTURED, P.PART_REFUNDED}
EDITABLE = {P.AUTHORIZED, P.PART_CAPTURED}
EXPIRABLE = {P.AUTHORIZED, P.PART_CAPTURED, P.PART_REFUNDED}

REFERENCES = ("A", "B", "C")
#: Where a run starts: each stage includes the ones before it.
STAGES = ["created", "opened", "completed", "part_captured"]
prices = st.integers(min_value=0, max_value=50_000)
lines_strategy = st.lists(
    st.tuples(st.sampled_from(REFERENCES), st.integers(1, 3), prices),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
).map(lambda rows: [line(ref, price, quantity=qty) for ref, qty, price in rows])
new_lines = lines_strategy.filter(lambda ls: _total(ls) > 0)
auto_captures = st.sampled_from([False, False, False, True])
#: Most runs start after checkout: that is where most of the rules apply.
stages = st.sampled_from([*STAGES, "completed", "completed", "part_captured"])
#: How much of what is left a capture or refund asks for; None names no amount at all.
portions = st.sampled_from([None, "one", "quarter", "half", "all", "beyond"])
#: Half the captures and refunds name lines instead of an amount.
line_picks = st.just([]) | st.lists(st.sampled_from(REFERENCES), min_size=1, unique=True)


def _portion(portion: str | None, left: int) -> int | None:
    if portion is None:
        return None
    share = {"one": 1, "quarter": left // 4, "half": left // 2, "all": left, "beyond": left + 1}
    return max(1, share[portion])


def _total(lines: list[dict[str, Any]]) -> int:
    return sum(item["quantity"] * item["unit_price"] for item in lines)


@dataclass
class Model:
    """What the order should be, kept from the commands alone."""

    lines: list[dict[str, Any]]
    auto_capture: bool
    link: LinkStatus = L.CREATED
    #: Every token issued, the live one last.
    tokens: list[str] = field(default_factory=list)
    link_expires_at: datetime | None = None
    reservation_expires_at: datetime | None = None
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    released: int = 0
    expired: bool = False
    captured_references: set[str] = field(default_factory=set)

    @property
    def order_amount(self) -> int:
        return _total(self.lines)

    @property
    def remaining(self) -> int:
        return self.order_amount - self.captured - self.released

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded

    @property
    def status(self) -> PaymentStatus | None:
        """Seed 004 in words: what has happened to the money decides the status."""
        if self.link is not L.COMPLETED:
            return None
        if self.expired:
            return P.EXPIRED
        if self.refunded:
            everything_back = self.refunded == self.captured and self.remaining == 0
            return P.REFUNDED if everything_back else P.PART_REFUNDED
        if not self.captured:
            return P.CANCELLED if self.released else P.AUTHORIZED
        return P.CAPTURED if self.remaining == 0 else P.PART_CAPTURED

    @property
    def finished(self) -> bool:
        """No command can change the order any more."""
        return self.link is L.CANCELLED or self.status in (P.CANCELLED, P.REFUNDED, P.EXPIRED)

    def refusal(self, allowed: set[PaymentStatus]) -> str | None:
        return None if self.status in allowed else NOT_ALLOWED


Effect = Callable[[], None]


#: Link-stage rules stop at checkout and payment rules start there: refusals across
#: that line are pinned down example by example in test_status_actions.
def before_checkout(machine: OrderLifecycle) -> bool:
    return machine.model.link is not L.COMPLETED


def after_checkout(machine: OrderLifecycle) -> bool:
    return machine.model.link is L.COMPLETED


class OrderLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.world.configure()
        self.model: Model
        #: Commands answered so far and their first outcome, for duplicates.
        self.answered: list[tuple[CommandBase, Outcome]] = []
        self.sends: list[c.SendPaymentLink] = []

    # ---- running one command against the model's prediction -----------------------------
    # The fakes never change a stored order in place (they store a fresh copy on commit),
    # so a shallow copy of ``db.orders`` is enough to tell whether a command changed it.

    def run(self, command: CommandBase, refusal: str | None, effect: Effect | None = None) -> None:
        """Dispatch ``command``; ``refusal`` is the code the model expects, None = accepted."""
        world, mark, commands = self.world, len(self.world.db.events), len(self.world.db.commands)
        before = dict(world.db.orders)
        outcome = world.run(command)
        new_events = world.db.events[mark:]
        if refusal is None:
            assert outcome.status == "accepted", (outcome, self.model)
            assert new_events == outcome.events
            assert not any(isinstance(e, OrderRejected) for e in new_events)
            if effect is not None:
                effect()
        else:
            assert (outcome.status, outcome.code) == ("rejected", refusal), (outcome, self.model)
            assert [(e.type, e.command_id) for e in new_events] == [
                ("order.rejected", command.command_id)
            ]
            assert world.db.orders == before
            assert len(world.db.commands) == commands
        self.answered.append((command, outcome))

    def command(self, cls: type[CommandBase], **fields: Any) -> CommandBase:
        return self.world.command(cls, **fields)

    def _issued_link(self) -> None:
        """The outbox got a SendPaymentLink carrying the new token: the model learns it."""
        send = self.world.db.commands[-1]
        assert isinstance(send, c.SendPaymentLink)
        self.sends.append(send)
        self.model.tokens.append(send.token)
        self.model.link = L.CREATED
        self.model.link_expires_at = self.world.clock.now() + LINK_TTL

    # ---- creating the order --------------------------------------------------------------

    @initialize(lines=new_lines, auto_capture=auto_captures, stage=stages)
    def create(self, lines: list[dict[str, Any]], auto_capture: bool, stage: str) -> None:
        """Create the order, and take it part of the way so that runs start anywhere."""
        self.model = Model(lines=lines, auto_capture=auto_capture)
        self.sends = []
        cmd = self.command(c.CreateOrder, order_lines=lines, auto_capture=auto_capture)
        self.run(cmd, None, self._issued_link)
        steps = STAGES[1 : STAGES.index(stage) + 1]
        if "opened" in steps:
            self.open_link(-1)
        if "completed" in steps:
            self.complete_checkout(-1, exact_amount=True)
        if "part_captured" in steps:
            self.capture("half", [])

    @precondition(lambda self: self.model.finished)
    @rule(lines=new_lines, auto_capture=auto_captures, stage=stages)
    def next_order(self, lines: list[dict[str, Any]], auto_capture: bool, stage: str) -> None:
        """Nothing more can happen to this order: carry on with a new one, same database."""
        self.world.order_id = uuid.uuid4()
        self.create(lines, auto_capture, stage)

    # ---- link axis -------------------------------------------------------------------------

    def _token(self, index: int) -> str:
        tokens = self.model.tokens
        return UNKNOWN_TOKEN if index >= len(tokens) else tokens[index]

    def _dead_token_code(self, token: str) -> str | None:
        m = self.model
        if token not in m.tokens:
            return "LINK_UNKNOWN"
        if token != m.tokens[-1]:
            return "LINK_SUPERSEDED"
        if m.link is L.CANCELLED:
            return "LINK_CANCELLED"
        if m.link is L.COMPLETED:
            return "LINK_ALREADY_COMPLETED"
        assert m.link_expires_at is not None
        if m.link is L.EXPIRED or self.world.clock.now() >= m.link_expires_at:
            return "LINK_EXPIRED"
        return None

    @rule(index=st.integers(-1, 3))
    def open_link(self, index: int) -> None:
        token = self._token(index)

        def effect() -> None:
            self.model.link = L.IN_PROGRESS

        self.run(
            self.command(c.PaymentLinkOpened, token=token), self._dead_token_code(token), effect
        )

    @rule(index=st.integers(-1, 3), exact_amount=st.booleans())
    def complete_checkout(self, index: int, exact_amount: bool) -> None:
        m, token = self.model, self._token(index)
        amount = m.order_amount if exact_amount else m.order_amount + 1
        refusal = self._dead_token_code(token) or (
            None if exact_amount else "AUTHORIZATION_AMOUNT_MISMATCH"
        )

        def effect() -> None:
            m.link, m.authorized = L.COMPLETED, m.order_amount
            m.reservation_expires_at = self.world.clock.now() + RESERVATION_TTL
            if m.auto_capture:
                m.captured = m.order_amount

        cmd = self.command(c.CheckoutCompleted, token=token, authorized_amount=amount)
        self.run(cmd, refusal, effect)

    @precondition(before_checkout)
    @rule(data=st.data())
    def deliver_link(self, data: st.DataObject) -> None:
        send = data.draw(st.sampled_from(self.sends))
        if any(done.command_id == send.command_id for done, _ in self.answered):
            return self.repeat(send)
        refusal = None
        if send.token != self.model.tokens[-1]:
            refusal = "LINK_SUPERSEDED"
        elif self.model.link is not L.CREATED:
            refusal = NOT_ALLOWED
        self.run(send, refusal)
        return None

    @precondition(before_checkout)
    @rule(index=st.integers(-2, -1))
    def expire_link(self, index: int) -> None:
        m = self.model
        links = self.world.order.links
        link = links[max(index, -len(links))]
        assert m.link_expires_at is not None
        refusal = None
        if link is not links[-1]:
            refusal = "LINK_SUPERSEDED"
        elif self.world.clock.now() < m.link_expires_at:
            refusal = "LINK_NOT_DUE"
        elif m.link not in (L.CREATED, L.IN_PROGRESS):
            refusal = NOT_ALLOWED

        def effect() -> None:
            m.link = L.EXPIRED

        self.run(self.command(c.ExpirePaymentLink, link_id=str(link.link_id)), refusal, effect)

    @precondition(before_checkout)
    @rule()
    def resend_link(self) -> None:
        refusal = None if self.model.link in (L.CREATED, L.IN_PROGRESS, L.EXPIRED) else NOT_ALLOWED
        self.run(self.command(c.ResendPaymentLink), refusal, self._issued_link)

    @rule()
    def cancel(self) -> None:
        m = self.model

        def cancel_link() -> None:
            m.link = L.CANCELLED

        def void_authorization() -> None:
            m.released += m.remaining

        if m.link in (L.CREATED, L.IN_PROGRESS):
            refusal, effect = None, cancel_link
        elif m.link is L.COMPLETED:
            refusal, effect = m.refusal({P.AUTHORIZED}), void_authorization
        else:
            refusal, effect = NOT_ALLOWED, cancel_link
        self.run(self.command(c.CancelOrder), refusal, effect)

    # ---- payment axis ----------------------------------------------------------------------

    def _move_money(
        self,
        cls: type[c.CapturePayment | c.RefundPayment],
        portion: str | None,
        references: list[str],
        limit: int,
        too_much: str,
    ) -> tuple[CommandBase, str | None, int, list[dict[str, Any]]]:
        """A capture or refund of ``portion`` of ``limit`` (or of the named lines)."""
        lines = [item for item in self.model.lines if item["reference"] in references]
        amount = _portion(portion, limit)
        value = _total(lines) if lines else (amount or limit)
        refusal = None
        if value <= 0:
            refusal = "AMOUNT_INVALID"
        elif value > limit:
            refusal = too_much
        fields = {"order_lines": lines} if lines else {"amount": amount}
        return self.command(cls, **fields), refusal, value, lines

    @precondition(after_checkout)
    @rule(portion=portions, references=line_picks)
    def capture(self, portion: str | None, references: list[str]) -> None:
        m = self.model
        cmd, refusal, value, lines = self._move_money(
            c.CapturePayment, portion, references, m.remaining, "CAPTURE_EXCEEDS_REMAINING"
        )

        def effect() -> None:
            m.captured += value
            m.captured_references.update(item["reference"] for item in lines)

        self.run(cmd, m.refusal(CAPTURABLE) or refusal, effect)

    @precondition(after_checkout)
    @rule(portion=portions, references=line_picks)
    def refund(self, portion: str | None, references: list[str]) -> None:
        m = self.model
        cmd, refusal, value, _ = self._move_money(
            c.RefundPayment, portion, references, m.refundable, "REFUND_EXCEEDS_CAPTURED"
        )

        def effect() -> None:
            m.refunded += value

        self.run(cmd, m.refusal(REFUNDABLE) or refusal, effect)

    @precondition(after_checkout)
    @rule()
    def release(self) -> None:
        m = self.model

        def effect() -> None:
            m.released += m.remaining

        self.run(
            self.command(c.ReleaseRemainingAuthorization), m.refusal({P.PART_CAPTURED}), effect
        )

    @precondition(after_checkout)
    @rule(fee=st.integers(1, 10_000))
    def add_return_fee(self, fee: int) -> None:
        m = self.model

        def effect() -> None:
            m.lines.append(line("return-fee", fee, type="return_fee"))
            m.captured += fee

        cmd = self.command(c.AddReturnFee, amount=fee, tax_rate=2500)
        self.run(cmd, m.refusal({P.CAPTURED}), effect)

    @precondition(after_checkout)
    @rule(
        new_lines=lines_strategy,
        scale=st.sampled_from([None, 0.0, 0.5, 0.9, 1.0, 1.2]),
        keep_captured=st.booleans(),
    )
    def update_lines(
        self, new_lines: list[dict[str, Any]], scale: float | None, keep_captured: bool
    ) -> None:
        """New lines, or the current ones with every price scaled (up or down)."""
        m = self.model
        if scale is not None:
            new_lines = [
                {**item, "unit_price": int(item["unit_price"] * scale)} for item in m.lines
            ]
        if keep_captured:
            captured = [item for item in m.lines if item["reference"] in m.captured_references]
            fresh = [item for item in new_lines if item["reference"] not in m.captured_references]
            new_lines = captured + fresh or new_lines
        new_amount = _total(new_lines)
        old = {item["reference"]: item for item in m.lines}
        new = {item["reference"]: item for item in new_lines}
        refusal = m.refusal(EDITABLE)
        if refusal:
            pass
        elif new_amount <= 0:
            refusal = "ORDER_AMOUNT_INVALID"
        elif new_amount > m.authorized:
            refusal = "AMOUNT_EXCEEDS_AUTHORIZATION"
        elif new_amount < m.captured + m.released:
            refusal = "ORDER_AMOUNT_BELOW_CAPTURED"
        elif m.status is P.PART_CAPTURED and any(
            old.get(ref) != new.get(ref) for ref in m.captured_references
        ):
            refusal = "LINE_ALREADY_CAPTURED"

        def effect() -> None:
            m.lines = new_lines

        self.run(self.command(c.UpdateOrderLines, order_lines=new_lines), refusal, effect)

    @precondition(after_checkout)
    @rule(
        change=st.sampled_from(
            [{"name": "Bo"}, {"email": "bo@example.com"}, {"phone": "+46701234567"}]
        )
    )
    def update_customer(self, change: dict[str, str]) -> None:
        self.run(
            self.command(c.UpdateCustomerDetails, **change), self.model.refusal({P.AUTHORIZED})
        )

    @precondition(after_checkout)
    @rule()
    def expire_authorization(self) -> None:
        m = self.model
        refusal = m.refusal(EXPIRABLE)
        if refusal is None:
            assert m.reservation_expires_at is not None
            if self.world.clock.now() < m.reservation_expires_at:
                refusal = "RESERVATION_NOT_DUE"
            elif m.remaining == 0:
                refusal = "NOTHING_RESERVED"

        def effect() -> None:
            m.released += m.remaining
            m.expired = True

        self.run(self.command(c.ExpireAuthorization), refusal, effect)

    # ---- time, duplicates, conflicts ---------------------------------------------------------

    @rule(hours=st.sampled_from([1, 23, 47, 48, 24 * 28, 24 * 29]))
    def advance_clock(self, hours: int) -> None:
        self.world.clock.advance(hours=hours)

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def repeat_command(self, data: st.DataObject) -> None:
        command, _ = data.draw(st.sampled_from(self.answered))
        self.repeat(command)

    def repeat(self, command: CommandBase) -> None:
        """A redelivered command: no second effect, the first outcome's events again."""
        first = next(out for cmd, out in self.answered if cmd.command_id == command.command_id)
        world, mark = self.world, len(self.world.db.events)
        before = dict(world.db.orders), len(world.db.commands), len(world.notifier.sent)
        outcome = world.run(command)
        assert outcome.status == "duplicate", outcome
        assert [e.event_id for e in outcome.events] == [e.event_id for e in first.events]
        assert world.db.events[mark:] == first.events
        assert (world.db.orders, len(world.db.commands), len(world.notifier.sent)) == before

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def reuse_command_id(self, data: st.DataObject) -> None:
        """Same id re-sent a second later (fresh issued_at): a duplicate, nothing else."""
        command, _ = data.draw(st.sampled_from(self.answered))
        resent = command.model_copy(update={"issued_at": command.issued_at + timedelta(seconds=1)})
        world = self.world
        before = dict(world.db.orders)
        outcome = world.run(resent)
        assert outcome.status == "duplicate", outcome
        assert world.db.orders == before

    # ---- after every step -----------------------------------------------------------------------

    @invariant()
    def design_invariants_hold(self) -> None:
        order = self.world.order
        b, amount = order.balance, order.order_amount
        assert 0 <= b.captured <= amount, (b, amount)
        assert 0 <= b.refunded <= b.captured, b
        assert b.remaining(amount) == amount - b.captured - b.released
        if order.link_status is L.COMPLETED:
            assert b.remaining(amount) >= 0, (b, amount)

    @invariant()
    def order_matches_the_model(self) -> None:
        order, m = self.world.order, self.model
        b = order.balance
        assert order.link_status is m.link
        assert order.payment_status is m.status
        assert order.order_amount == m.order_amount
        assert (b.authorized, b.captured, b.refunded, b.released) == (
            m.authorized,
            m.captured,
            m.refunded,
            m.released,
        )
        assert order.link_expires_at == m.link_expires_at


OrderLifecycle.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_order_lifecycle = OrderLifecycle.TestCase
