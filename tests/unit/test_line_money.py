"""Money correct to the line: one test per observation of the order-management review
(captures and refunds by line, stranded money, return fees, unique references,
idempotency by type, expired links, edits that give up authorization), and the
arithmetic of line shares."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.ledger import EntryKind, ReleaseReason
from domain.line_ledger import LinePosition, capture_share, refund_share
from domain.lines import OrderLine
from domain.status import PaymentStatus
from messages import commands as c
from tests.unit.builders import LINES, ORDER_AMOUNT, World, line

P = PaymentStatus
A, B = LINES  # A: 1 × 600.00, B: 1 × 400.00
#: An order whose line A has three units: 3 × 200.00, and B: 1 × 400.00.
THREE_A = [line("A", 20_000, quantity=3), line("B", 40_000)]


def _units(item: dict[str, Any], quantity: int, **extra: Any) -> dict[str, Any]:
    return {**item, "quantity": quantity, **extra}


# ---- 1. amounts come from the order's line ---------------------------------------------


def test_line_capture_at_an_amount_other_than_the_lines_is_refused():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(A, 1, total_amount=99_999)])
    watch.assert_refused(outcome, "LINE_AMOUNT_MISMATCH")
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(A, 1, total_amount=1)])
    watch.assert_refused(outcome, "LINE_AMOUNT_MISMATCH")


def test_line_capture_takes_its_amount_from_the_order_line():
    world = World().authorized()
    outcome = world.ok(c.CapturePayment, order_lines=[_units(A, 1)])
    (event,) = outcome.events
    assert event.amount == 60_000
    assert [(s.reference, s.quantity, s.amount) for s in event.order_lines] == [("A", 1, 60_000)]


def test_line_named_at_another_unit_price_is_refused():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(A, 1, unit_price=99_999)])
    watch.assert_refused(outcome, "LINE_DIFFERS_FROM_ORDER")


# ---- 2. a line is captured at most up to its quantity ----------------------------------


def test_a_line_captured_whole_cannot_be_captured_again():
    world = World().authorized()
    world.ok(c.CapturePayment, order_lines=[_units(A, 1)])
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(A, 1)])
    watch.assert_refused(outcome, "LINE_CAPTURE_EXCEEDS_QUANTITY")


def test_the_same_line_twice_in_one_capture_is_refused():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(A, 1), _units(A, 1)])
    watch.assert_refused(outcome, "LINE_REFERENCE_DUPLICATE")


def test_units_of_a_line_are_captured_up_to_its_quantity():
    world = World().authorized(order_lines=THREE_A)
    world.ok(c.CapturePayment, order_lines=[_units(THREE_A[0], 2)])
    watch = world.watch()
    outcome = world.do(c.CapturePayment, order_lines=[_units(THREE_A[0], 2)])
    watch.assert_refused(outcome, "LINE_CAPTURE_EXCEEDS_QUANTITY")
    assert (
        world.ok(c.CapturePayment, order_lines=[_units(THREE_A[0], 1)]).events[0].amount == 20_000
    )


# ---- 3. refunds per line are bounded by what was captured of it ------------------------


def test_a_line_never_captured_cannot_be_refunded():
    world = World().authorized()
    world.ok(c.CapturePayment, order_lines=[_units(A, 1)])
    watch = world.watch()
    outcome = world.do(c.RefundPayment, order_lines=[_units(B, 1)])
    watch.assert_refused(outcome, "LINE_REFUND_EXCEEDS_CAPTURED")


def test_a_captured_line_is_refunded_once():
    world = World().authorized(order_lines=[line("A", 30_000), line("B", 70_000)])
    world.ok(c.CapturePayment)  # everything, so every line counts as captured
    world.ok(c.RefundPayment, order_lines=[line("A", 30_000)])
    watch = world.watch()
    outcome = world.do(c.RefundPayment, order_lines=[line("A", 30_000)])
    watch.assert_refused(outcome, "LINE_REFUND_EXCEEDS_CAPTURED")
    assert world.order.balance.refunded == 30_000


# ---- 4, 5, 6. no stranded money -------------------------------------------------------


def test_part_refunded_order_with_money_reserved_can_still_capture_release_and_cancel():
    # Given: 300.00 captured, 100.00 refunded, 700.00 still reserved
    world = World().authorized()
    world.ok(c.CapturePayment, amount=30_000)
    world.ok(c.RefundPayment, amount=10_000)
    assert world.order.payment_status is P.PART_REFUNDED
    # Then: every way to move the reserved money is open
    for cls in (c.CapturePayment, c.ReleaseRemainingAuthorization, c.CancelOrder):
        assert copy.deepcopy(world).do(cls).status == "accepted", cls.__name__
    world.ok(c.CapturePayment, amount=70_000)
    assert world.order.balance.remaining(ORDER_AMOUNT) == 0


def test_reservation_expiry_after_a_part_capture_leaves_the_captured_part_refundable():
    world = World().authorized()
    world.ok(c.CapturePayment, amount=30_000)
    world.clock.advance(days=28, seconds=1)
    world.ok(c.ExpireAuthorization)
    assert world.order.payment_status is P.CAPTURED
    outcome = world.ok(c.RefundPayment, amount=5_000)
    assert outcome.events[0].payment_status == P.PART_REFUNDED.value


def test_cancel_on_a_part_captured_order_releases_the_uncaptured_rest():
    world = World().authorized()
    world.ok(c.CapturePayment, amount=30_000)
    (event,) = world.ok(c.CancelOrder).events
    assert (event.type, event.released_amount) == ("order.cancelled", 70_000)
    assert world.order.payment_status is P.CAPTURED
    assert world.order.balance.captured == 30_000


# ---- 7. return fees are withheld from refunds ---------------------------------------------


def test_a_return_fee_larger_than_the_refund_is_refused():
    world = World().authorized()
    world.ok(c.CapturePayment)
    watch = world.watch()
    outcome = world.do(c.AddReturnFee, amount=200_000, tax_rate=2500, refund_amount=ORDER_AMOUNT)
    watch.assert_refused(outcome, "RETURN_FEE_EXCEEDS_REFUND")


def test_a_return_fee_is_withheld_from_the_refund_and_charges_nothing_extra():
    world = World().authorized()
    world.ok(c.CapturePayment)
    fee_cmd = {"amount": 4_900, "tax_rate": 2500, "refund_amount": ORDER_AMOUNT}
    refund, fee = world.ok(c.AddReturnFee, **fee_cmd).events
    assert (refund.amount, refund.return_fee_amount, refund.refunded_to_customer) == (
        ORDER_AMOUNT,
        4_900,
        ORDER_AMOUNT - 4_900,
    )
    assert (fee.type, fee.reference, fee.amount) == ("order.return_fee_added", "return-fee", 4_900)
    b = world.order.balance
    assert b.charged == 4_900 <= b.captured
    assert world.order.order_amount == ORDER_AMOUNT  # the fee is not a new order line


def test_a_return_fee_line_in_a_refund_is_withheld_from_it():
    world = World().authorized()
    world.ok(c.CapturePayment)
    fee_line = line("restock", 1_000, type="return_fee")
    (refund, fee) = world.ok(c.RefundPayment, order_lines=[_units(A, 1), fee_line]).events
    assert (refund.amount, refund.refunded_to_customer, fee.amount) == (60_000, 59_000, 1_000)


def test_a_return_fee_alone_never_means_refund_everything():
    world = World().authorized()
    world.ok(c.CapturePayment)
    watch = world.watch()
    outcome = world.do(c.RefundPayment, order_lines=[line("fee", 500, type="return_fee")])
    watch.assert_refused(outcome, "REFUND_AMOUNT_REQUIRED")


def test_add_return_fee_names_what_it_refunds():
    fields = World().command(c.AddReturnFee).model_dump(mode="json")
    del fields["refund_amount"]
    with pytest.raises(ValidationError, match="refund_amount"):
        c.AddReturnFee.model_validate(fields)


def test_a_return_fee_needs_something_refundable():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(c.AddReturnFee, amount=100, tax_rate=2500, refund_amount=1_000)
    watch.assert_refused(outcome, "ACTION_NOT_ALLOWED_IN_STATUS")


# ---- 8. unique line references ------------------------------------------------------------


def test_two_lines_with_one_reference_are_refused_at_creation():
    world = World()
    world.configure()
    outcome = world.do(c.CreateOrder, order_lines=[A, {**B, "reference": "A"}])
    assert outcome.code == "LINE_REFERENCE_DUPLICATE"


def test_two_lines_with_one_reference_are_refused_in_an_edit():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(c.UpdateOrderLines, order_lines=[A, {**B, "reference": "A"}])
    watch.assert_refused(outcome, "LINE_REFERENCE_DUPLICATE")


def test_a_second_return_fee_gets_a_reference_of_its_own():
    world = World().authorized()
    world.ok(c.CapturePayment)
    world.ok(c.RefundPayment, amount=50_000, order_lines=None)
    world.ok(c.AddReturnFee, amount=100, tax_rate=2500, refund_amount=20_000)
    second = world.ok(c.AddReturnFee, amount=100, tax_rate=2500, refund_amount=1_000)
    assert second.events[-1].reference == "return-fee-2"


def test_a_return_fee_reference_already_on_the_order_is_refused():
    world = World().authorized()
    world.ok(c.CapturePayment)
    watch = world.watch()
    outcome = world.do(
        c.AddReturnFee, amount=100, tax_rate=2500, refund_amount=1_000, reference="A"
    )
    watch.assert_refused(outcome, "LINE_REFERENCE_DUPLICATE")


# ---- 9. idempotency by type and payload ----------------------------------------------------


def test_a_command_id_reused_by_another_command_type_is_a_conflict():
    # Given: a ResendPaymentLink was answered
    world = World().sent_order()
    resend = world.command(c.ResendPaymentLink)
    assert world.run(resend).status == "accepted"
    # When: a CancelOrder (same fields: order and actor) reuses its id
    cancel = world.command(c.CancelOrder, command_id=str(resend.command_id))
    outcome = world.run(cancel)
    # Then
    assert (outcome.status, outcome.code) == ("rejected", "DUPLICATE_COMMAND_CONFLICT")


def test_a_refund_reusing_a_captures_id_is_a_conflict_not_the_capture_again():
    world = World().authorized()
    capture = world.command(c.CapturePayment, amount=10_000)
    assert world.run(capture).status == "accepted"
    refund = world.command(c.RefundPayment, amount=10_000, command_id=str(capture.command_id))
    outcome = world.run(refund)
    assert (outcome.status, outcome.code) == ("rejected", "DUPLICATE_COMMAND_CONFLICT")
    assert [e.type for e in outcome.events] == ["order.rejected"]


# ---- 10. no expired link is sent -------------------------------------------------------------


def test_a_link_past_its_deadline_is_not_sent_before_the_scheduler_expires_it():
    world = World()
    world.configure()
    world.create()
    world.clock.advance(hours=48)
    outcome = world.deliver()
    assert (outcome.status, outcome.code) == ("rejected", "LINK_EXPIRED")
    assert world.notifier.sent == []


# ---- 11. authorization given up by an edit is a ledger entry ---------------------------------


def test_an_edit_that_lowers_the_amount_releases_the_difference_with_its_event():
    world = World().authorized()
    world.ok(c.CapturePayment, amount=10_000)
    updated, released = world.ok(c.UpdateOrderLines, order_lines=[A, line("B", 30_000)]).events
    assert (updated.released_amount, released.type, released.reason) == (
        10_000,
        "payment.released",
        "edit",
    )
    order = world.order
    b = order.balance
    (edit,) = [e for e in order.ledger if e.reason is ReleaseReason.EDIT]
    assert (edit.kind, edit.amount) == (EntryKind.RELEASE, 10_000)
    assert b.authorized - b.captured - b.released - b.reduced == b.remaining(order.order_amount)


def test_an_edit_of_an_authorized_order_gives_up_the_difference_of_the_authorization():
    world = World().authorized()
    events = world.ok(c.UpdateOrderLines, order_lines=[A, line("B", 25_000)]).events
    assert [(e.type, getattr(e, "amount", None)) for e in events] == [
        ("order.lines_updated", None),
        ("payment.released", 15_000),
    ]
    b = world.order.balance
    assert (b.authorized, b.reduced, b.released, world.order.order_amount) == (
        ORDER_AMOUNT,
        15_000,
        0,
        85_000,
    )
    assert world.order.payment_status is P.AUTHORIZED


def test_an_edit_above_the_authorization_held_is_refused():
    world = World().authorized()
    world.ok(c.UpdateOrderLines, order_lines=[A, line("B", 30_000)])
    watch = world.watch()
    outcome = world.do(c.UpdateOrderLines, order_lines=[A, B])
    watch.assert_refused(outcome, "AMOUNT_EXCEEDS_AUTHORIZATION")


def test_a_captured_line_cannot_be_edited_but_an_uncaptured_one_can():
    world = World().authorized()
    world.ok(c.CapturePayment, order_lines=[_units(A, 1)])
    watch = world.watch()
    outcome = world.do(c.UpdateOrderLines, order_lines=[line("A", 50_000), B])
    watch.assert_refused(outcome, "LINE_ALREADY_CAPTURED")
    world.ok(c.UpdateOrderLines, order_lines=[A, line("B", 35_000)])


# ---- 12. return_fee lines only in order management ---------------------------------------------


def test_return_fee_lines_are_refused_in_create_order():
    world = World()
    world.configure()
    outcome = world.do(c.CreateOrder, order_lines=[A, line("F", 500, type="return_fee")])
    assert outcome.code == "LINE_TYPE_NOT_ALLOWED"


def test_return_fee_lines_are_refused_in_update_order_lines():
    world = World().authorized()
    watch = world.watch()
    outcome = world.do(
        c.UpdateOrderLines, order_lines=[line("A", 50_000), line("F", 500, type="return_fee")]
    )
    watch.assert_refused(outcome, "LINE_TYPE_NOT_ALLOWED")


# ---- line share arithmetic --------------------------------------------------------------------


def _line(
    quantity: int, unit_price: int, discount: int, tax_rate: int, kind: str = "physical"
) -> OrderLine:
    return OrderLine.create(
        name="x",
        reference="L",
        type=kind,
        quantity=quantity,
        unit_price=unit_price,
        tax_rate=tax_rate,
        total_discount_amount=discount,
    )


def test_shares_of_a_discounted_line_place_the_remainder_on_the_last_unit():
    # 3 × 100.00 with 10.00 off: 290.00, tax 25 % = 58.00
    ln = _line(3, 10_000, 1_000, 2500)
    first = capture_share(ln, LinePosition(), 1)
    assert (first.amount, first.tax_amount) == (9_666, 1_933)
    pos = LinePosition(captured=LinePosition().captured.plus(first))
    rest = capture_share(ln, pos, 2)
    assert (rest.amount, rest.tax_amount) == (29_000 - 9_666, 5_800 - 1_933)


@given(
    quantity=st.integers(1, 12),
    unit_price=st.integers(0, 1_000_000),
    discount_share=st.integers(0, 100),
    tax_rate=st.sampled_from([0, 600, 1200, 2000, 2500, 10_000]),
    negative=st.booleans(),
    data=st.data(),
)
def test_shares_sum_to_the_line_exactly_however_it_is_split(
    quantity: int,
    unit_price: int,
    discount_share: int,
    tax_rate: int,
    negative: bool,
    data: st.DataObject,
):
    if negative:  # a discount line: negative unit price, a discount deepens it
        ln = _line(quantity, -max(unit_price, 1), discount_share, tax_rate, "discount")
    else:
        ln = _line(quantity, unit_price, quantity * unit_price * discount_share // 100, tax_rate)
    pos, left = LinePosition(), quantity
    while left:
        units = data.draw(st.integers(1, left))
        share = capture_share(ln, pos, units)
        exact = ln.total_amount * units / quantity
        assert abs(share.amount - exact) < 2, (share, exact)
        pos = LinePosition(captured=pos.captured.plus(share))
        left -= units
    assert (pos.captured.amount, pos.captured.tax_amount) == (ln.total_amount, ln.total_tax_amount)
    # refunds of everything captured, in other pieces, sum back to the same
    left = quantity
    while left:
        units = data.draw(st.integers(1, left))
        pos = LinePosition(pos.captured, pos.refunded.plus(refund_share(ln, pos, units)))
        left -= units
    assert pos.refunded == pos.captured
