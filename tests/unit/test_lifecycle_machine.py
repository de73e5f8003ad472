"""Random command sequences over an order, against a model kept here independently.

The machine issues every kind of command through ``domain.bus.handle`` on the fakes, in any
order, with duplicates and conflicting re-uses of command ids, and moves the clock
across the link and reservation deadlines. Before each command the model predicts
the outcome (accepted, or the rejection code); after each step the DESIGN section 1
invariants are checked on the stored order, and its amounts and statuses are compared
with the model's. Once an order can change no more, the run goes on with a new one.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.bus import Outcome
from domain.ports import LINK_TTL, RESERVATION_TTL
from domain.status import LinkStatus, PaymentStatus
from messages import commands as c
from messages.common import CommandBase
from messages.events import OrderRejected
from tests.unit.builders import UNKNOWN_TOKEN, World, line

L, P = LinkStatus, PaymentStatus
NOT_ALLOWED = "ACTION_NOT_ALLOWED_IN_STATUS"
#: Seed 004: where lines and customer details may be edited.
EDITABLE = {P.AUTHORIZED, P.PART_CAPTURED}

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
#: A messy naming of lines: a line twice, "X" not on the order, more units than exist.
messy_picks = st.lists(
    st.tuples(st.sampled_from((*REFERENCES, "X")), st.integers(1, 3)), min_size=2, max_size=3
)
#: How a line names its amount: not at all, right, or one minor unit off.
given_amounts = st.sampled_from(["none", "none", "right", "off"])
fees = st.none() | st.integers(1, 20_000)


def _portion(portion: str | None, left: int) -> int | None:
    if portion is None:
        return None
    share = {"one": 1, "quarter": left // 4, "half": left // 2, "all": left, "beyond": left + 1}
    return max(1, share[portion])


def _total(lines: list[dict[str, Any]]) -> int:
    return sum(item["quantity"] * item["unit_price"] for item in lines)


@dataclass
class LineModel:
    """Units of one line captured and refunded by lines (prices here have no discount,
    so a unit is worth its unit price exactly)."""

    captured: int = 0
    refunded: int = 0


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
    #: Authorization given up by edits that lowered the amount.
    reduced: int = 0
    fees: int = 0
    fee_count: int = 0
    expired: bool = False
    per_line: dict[str, LineModel] = field(default_factory=dict)

    @property
    def order_amount(self) -> int:
        return _total(self.lines)

    @property
    def remaining(self) -> int:
        return self.order_amount - self.captured - self.released

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded

    def unit_price(self, reference: str) -> int:
        return next(item["unit_price"] for item in self.lines if item["reference"] == reference)

    def quantity(self, reference: str) -> int:
        return next(item["quantity"] for item in self.lines if item["reference"] == reference)

    def pos(self, reference: str) -> LineModel:
        return self.per_line.setdefault(reference, LineModel())

    @property
    def captured_by_lines(self) -> int:
        return sum(p.captured * self.unit_price(r) for r, p in self.per_line.items())

    @property
    def refunded_by_lines(self) -> int:
        return sum(p.refunded * self.unit_price(r) for r, p in self.per_line.items())

    @property
    def status(self) -> PaymentStatus | None:
        """Seed 004 in words: what has happened to the money decides the status."""
        if self.link is not L.COMPLETED:
            return None
        if self.expired and not self.captured:
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
        if self.link is L.CANCELLED:
            return True
        return self.link is L.COMPLETED and self.remaining == 0 and self.refundable == 0

    def refusal_unless(self, allowed: bool) -> str | None:
        return None if self.link is L.COMPLETED and allowed else NOT_ALLOWED


Effect = Callable[[], None]


#: Link-stage rules stop at checkout and payment rules start there: refusals across
#: that line are pinned down example by example in test_status_actions.
def before_checkout(machine: OrderLifecycle) -> bool:
    return machine.model.link is not L.COMPLETED


def after_checkout(machine: OrderLifecycle) -> bool:
    """Checkout completed and something can still happen to the money."""
    return machine.model.link is L.COMPLETED and not machine.model.finished


def finished(machine: OrderLifecycle) -> bool:
    return machine.model.finished


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
            self.capture("half", [], "none")

    @precondition(finished)
    @rule(
        action=st.sampled_from(
            ["capture", "refund", "release", "return_fee", "cancel", "expire", "edit", "customer"]
        )
    )
    def act_on_a_finished_order(self, action: str) -> None:
        """Nothing is reserved or refundable any more: every action is refused."""
        act: dict[str, Callable[[], None]] = {
            "capture": lambda: self.capture(None, [], "none"),
            "refund": lambda: self.refund(None, [], "none", None),
            "release": self.release,
            "return_fee": lambda: self.add_return_fee(1, None),
            "cancel": self.cancel,
            "expire": self.expire_authorization,
            "edit": lambda: self.update_lines(self.model.lines, None, False),
            "customer": lambda: self.update_customer({"name": "Bo"}),
        }
        act[action]()

    @precondition(finished)
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
                for item in m.lines:
                    m.pos(item["reference"]).captured = item["quantity"]

        cmd = self.command(c.CheckoutCompleted, token=token, authorized_amount=amount)
        self.run(cmd, refusal, effect)

    @precondition(before_checkout)
    @rule(data=st.data())
    def deliver_link(self, data: st.DataObject) -> None:
        send = data.draw(st.sampled_from(self.sends))
        if any(done.command_id == send.command_id for done, _ in self.answered):
            return self.repeat(send)
        refusal = None
        assert self.model.link_expires_at is not None
        if send.token != self.model.tokens[-1]:
            refusal = "LINK_SUPERSEDED"
        elif self.model.link is not L.CREATED:
            refusal = NOT_ALLOWED
        elif self.world.clock.now() >= self.model.link_expires_at:
            refusal = "LINK_EXPIRED"  # never sent once its 48 hours are over
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

    @precondition(lambda self: not self.model.finished)
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
            # Authorized: void it all; Part captured: release the uncaptured rest.
            refusal, effect = m.refusal_unless(m.remaining > 0), void_authorization
        else:
            refusal, effect = NOT_ALLOWED, cancel_link
        self.run(self.command(c.CancelOrder), refusal, effect)

    # ---- payment axis ----------------------------------------------------------------------

    def _line_payload(self, reference: str, units: int, given: str) -> dict[str, Any]:
        m = self.model
        on_order = any(item["reference"] == reference for item in m.lines)
        item = line(reference, m.unit_price(reference) if on_order else 100, quantity=units)
        if given != "none":
            item["total_amount"] = units * item["unit_price"] + (given == "off")
        return item

    def _by_lines(
        self, picks: list[tuple[str, int]], given: str, *, refund: bool
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        """The lines a capture or refund names, the code it must be refused with (the
        first rule broken, in the order the rules apply) and the amount it moves."""
        m = self.model
        references = [ref for ref, _ in picks]
        refusal = "LINE_REFERENCE_DUPLICATE" if len(set(references)) < len(picks) else None
        value = 0
        for ref, units in picks:
            if refusal:
                break
            if not any(item["reference"] == ref for item in m.lines):
                refusal = "LINE_NOT_IN_ORDER"
                break
            pos = m.per_line.get(ref, LineModel())
            open_units = pos.captured - pos.refunded if refund else m.quantity(ref) - pos.captured
            if units > open_units:
                refusal = (
                    "LINE_REFUND_EXCEEDS_CAPTURED" if refund else "LINE_CAPTURE_EXCEEDS_QUANTITY"
                )
            elif given == "off":
                refusal = "LINE_AMOUNT_MISMATCH"
            value += units * m.unit_price(ref)
        payload = [self._line_payload(ref, units, given) for ref, units in picks]
        return payload, refusal, value

    def _money(
        self,
        portion: str | None,
        picks: list[tuple[str, int]],
        given: str,
        limit: int,
        *,
        refund: bool,
    ) -> tuple[dict[str, Any], str | None, int]:
        """Fields, refusal and amount of a capture (or refund) of ``portion`` of ``limit``
        or of the picked lines."""
        if picks:
            order_lines, refusal, value = self._by_lines(picks, given, refund=refund)
            fields: dict[str, Any] = {"order_lines": order_lines}
        else:
            amount = _portion(portion, limit)
            refusal, value, fields = None, amount or limit, {"amount": amount}
        if refusal is None and value <= 0:
            refusal = "AMOUNT_INVALID"
        elif refusal is None and value > limit:
            refusal = "REFUND_EXCEEDS_CAPTURED" if refund else "CAPTURE_EXCEEDS_REMAINING"
        return fields, refusal, value

    def _moved(self, picks: list[tuple[str, int]], value: int, limit: int, *, refund: bool) -> None:
        """The model's per-line record of a capture or refund that was carried out."""
        m = self.model
        if picks:
            for ref, units in picks:
                pos = m.pos(ref)
                if refund:
                    pos.refunded += units
                else:
                    pos.captured += units
            return
        # Amount-only, of everything left, nothing earlier amount-only: every line's rest.
        unattributed = (
            (m.captured - m.captured_by_lines) - (m.refunded - m.refunded_by_lines)
            if refund
            else m.captured - m.captured_by_lines + m.released
        )
        if value == limit and unattributed == 0:
            for item in m.lines:
                pos = m.pos(item["reference"])
                if refund:
                    pos.refunded = pos.captured
                else:
                    pos.captured = item["quantity"]

    def _picks(self, data: st.DataObject, *, lines_only: bool = False) -> list[tuple[str, int]]:
        """Most captures and refunds name lines (units of the order's own lines, now and
        then one unit too many, or a mess) instead of an amount."""
        kinds = ["lines"] if lines_only else ["amount", "lines", "lines", "lines", "mess"]
        kind = data.draw(st.sampled_from(kinds))
        if kind == "amount":
            return []
        if kind == "mess":
            return data.draw(messy_picks)
        refs = data.draw(
            st.lists(
                st.sampled_from([item["reference"] for item in self.model.lines]),
                min_size=1,
                unique=True,
            )
        )
        return [(ref, data.draw(st.integers(1, self.model.quantity(ref) + 1))) for ref in refs]

    @precondition(after_checkout)
    @rule(portion=portions, data=st.data(), given=given_amounts)
    def capture_by(self, portion: str | None, data: st.DataObject, given: str) -> None:
        self.capture(portion, self._picks(data), given)

    @precondition(after_checkout)
    @rule(portion=portions, data=st.data(), given=given_amounts, fee=fees)
    def refund_by(
        self, portion: str | None, data: st.DataObject, given: str, fee: int | None
    ) -> None:
        self.refund(portion, self._picks(data), given, fee)

    @precondition(after_checkout)
    @rule(data=st.data())
    def capture_lines(self, data: st.DataObject) -> None:
        """Line captures and refunds are where the per-line rules live: drawn often."""
        self.capture(None, self._picks(data, lines_only=True), "none")

    @precondition(after_checkout)
    @rule(data=st.data())
    def refund_lines(self, data: st.DataObject) -> None:
        self.refund(None, self._picks(data, lines_only=True), "none", None)

    def capture(self, portion: str | None, picks: list[tuple[str, int]], given: str) -> None:
        m = self.model
        status = m.refusal_unless(m.remaining > 0)
        fields, refusal, value = self._money(portion, picks, given, m.remaining, refund=False)
        limit = m.remaining

        def effect() -> None:
            self._moved(picks, value, limit, refund=False)
            m.captured += value

        self.run(self.command(c.CapturePayment, **fields), status or refusal, effect)

    def refund(
        self, portion: str | None, picks: list[tuple[str, int]], given: str, fee: int | None
    ) -> None:
        m = self.model
        status = m.refusal_unless(m.refundable > 0)
        fields, refusal, value = self._money(portion, picks, given, m.refundable, refund=True)
        limit = m.refundable
        if fee is not None:
            fee_line = line(f"fee-{m.fee_count + 1}", fee, type="return_fee")
            fields["order_lines"] = [*fields.get("order_lines", []), fee_line]
            if not picks and portion is None:
                refusal = "REFUND_AMOUNT_REQUIRED"  # a fee alone never means "everything"
            elif refusal is None and fee > value:
                refusal = "RETURN_FEE_EXCEEDS_REFUND"

        def effect() -> None:
            self._moved(picks, value, limit, refund=True)
            m.refunded += value
            if fee is not None:
                m.fees += fee
                m.fee_count += 1

        self.run(self.command(c.RefundPayment, **fields), status or refusal, effect)

    @precondition(after_checkout)
    @rule()
    def release(self) -> None:
        m = self.model

        def effect() -> None:
            m.released += m.remaining

        # Seed 004 lets an Authorized order go by Cancel; release is for the rest of a
        # part capture.
        self.run(
            self.command(c.ReleaseRemainingAuthorization),
            m.refusal_unless(m.remaining > 0 and m.captured > 0),
            effect,
        )

    @precondition(after_checkout)
    @rule(fee=st.integers(1, 20_000), portion=portions)
    def add_return_fee(self, fee: int, portion: str | None) -> None:
        """A refund of ``portion`` of what is refundable, with ``fee`` withheld from it."""
        m = self.model
        limit = m.refundable
        refund = _portion(portion, limit) or max(limit, 1)
        refusal = m.refusal_unless(limit > 0)
        if refusal is None and refund > limit:
            refusal = "REFUND_EXCEEDS_CAPTURED"
        elif refusal is None and fee > refund:
            refusal = "RETURN_FEE_EXCEEDS_REFUND"

        def effect() -> None:
            self._moved([], refund, limit, refund=True)
            m.refunded += refund
            m.fees += fee

        cmd = self.command(c.AddReturnFee, amount=fee, tax_rate=2500, refund_amount=refund)
        self.run(cmd, refusal, effect)

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
        captured_refs = {ref for ref, pos in m.per_line.items() if pos.captured}
        if scale is not None:
            new_lines = [
                {**item, "unit_price": int(item["unit_price"] * scale)} for item in m.lines
            ]
        if keep_captured:
            captured = [item for item in m.lines if item["reference"] in captured_refs]
            fresh = [item for item in new_lines if item["reference"] not in captured_refs]
            new_lines = captured + fresh or new_lines
        new_amount, old_amount = _total(new_lines), m.order_amount
        old = {item["reference"]: item for item in m.lines}
        new = {item["reference"]: item for item in new_lines}
        refusal = m.refusal_unless(m.status in EDITABLE)
        if refusal:
            pass
        elif new_amount <= 0:
            refusal = "ORDER_AMOUNT_INVALID"
        elif new_amount > old_amount:
            refusal = "AMOUNT_EXCEEDS_AUTHORIZATION"
        elif new_amount < m.captured + m.released:
            refusal = "ORDER_AMOUNT_BELOW_CAPTURED"
        elif any(old.get(ref) != new.get(ref) for ref in captured_refs):
            refusal = "LINE_ALREADY_CAPTURED"

        def effect() -> None:
            m.lines = new_lines
            m.reduced += old_amount - new_amount
            for ref in list(m.per_line):
                if ref not in new:
                    del m.per_line[ref]  # never captured: nothing to keep

        self.run(self.command(c.UpdateOrderLines, order_lines=new_lines), refusal, effect)

    @precondition(after_checkout)
    @rule(
        change=st.sampled_from(
            [{"name": "Bo"}, {"email": "bo@example.com"}, {"phone": "+46701234567"}]
        )
    )
    def update_customer(self, change: dict[str, str]) -> None:
        m = self.model
        self.run(
            self.command(c.UpdateCustomerDetails, **change),
            m.refusal_unless(m.status is P.AUTHORIZED),
        )

    @precondition(after_checkout)
    @rule()
    def expire_authorization(self) -> None:
        m = self.model
        refusal = m.refusal_unless(m.remaining > 0)
        if refusal is None:
            assert m.reservation_expires_at is not None
            if self.world.clock.now() < m.reservation_expires_at:
                refusal = "RESERVATION_NOT_DUE"

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
        assert b.charged <= b.captured, b  # never charged beyond what was captured
        if order.link_status is L.COMPLETED:
            assert b.remaining(amount) >= 0, (b, amount)
            assert b.captured <= b.authorized, b
            assert b.authorized - b.reduced == amount, b

    @invariant()
    def every_line_within_its_bounds(self) -> None:
        """Per line: 0 <= refunded <= captured <= ordered, in units and amounts, and the
        shares of every entry add up to the entry."""
        order = self.world.order
        lines = {ln.reference: ln for ln in order.lines}
        for ref, pos in order.line_positions.items():
            ln = lines[ref]
            assert 0 <= pos.refunded.quantity <= pos.captured.quantity <= ln.quantity, (ref, pos)
            assert 0 <= pos.refunded.amount <= pos.captured.amount <= ln.total_amount, (ref, pos)
        for entry in order.ledger:
            if entry.lines and entry.kind.value in ("capture", "refund"):
                assert sum(share.amount for share in entry.lines) == entry.amount, entry
        by_lines = sum(p.captured.amount for p in order.line_positions.values())
        assert by_lines <= order.balance.captured

    @invariant()
    def no_money_is_stranded(self) -> None:
        """Reserved money can be captured or released; captured money can be refunded:
        tried for real, on a copy of the world."""
        order = self.world.order
        if order.link_status is not L.COMPLETED:
            return
        b = order.balance
        probes: list[tuple[type[CommandBase], dict[str, Any]]] = []
        if b.remaining(order.order_amount) > 0:
            probes += [(c.CapturePayment, {"amount": 1}), (c.CancelOrder, {})]
        if b.refundable > 0:
            probes.append((c.RefundPayment, {"amount": 1}))
        for cls, fields in probes:
            copy_of_world = copy.deepcopy(self.world)
            outcome = copy_of_world.run(copy_of_world.command(cls, **fields))
            assert outcome.status == "accepted", (cls.__name__, outcome, b)

    @invariant()
    def order_matches_the_model(self) -> None:
        order, m = self.world.order, self.model
        b = order.balance
        assert order.link_status is m.link
        assert order.payment_status is m.status
        assert order.order_amount == m.order_amount
        assert (b.authorized, b.captured, b.refunded, b.released, b.reduced, b.fees) == (
            m.authorized,
            m.captured,
            m.refunded,
            m.released,
            m.reduced,
            m.fees,
        )
        positions = order.line_positions
        for ref, pos in m.per_line.items():
            got = positions.get(ref)
            units = (got.captured.quantity, got.refunded.quantity) if got else (0, 0)
            assert units == (pos.captured, pos.refunded), (ref, units, pos)
        assert order.link_expires_at == m.link_expires_at


OrderLifecycle.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_order_lifecycle = OrderLifecycle.TestCase
