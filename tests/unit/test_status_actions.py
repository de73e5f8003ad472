"""What each status allows, pair by pair, on both axes.

Payment axis: seed 004's seven statuses x the seven merchant actions. Link axis:
seed 000's five link statuses x open, complete, expire, cancel, resend. Every pair is
its own test case: an allowed action is carried out (with its event and the status
it leads to); a refused one is rejected with its code and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.ports import LINK_TTL
from domain.status import LinkStatus, PaymentStatus
from messages import commands as c
from messages.common import CommandBase
from tests.unit.builders import ALLOWED_PAYMENT_ACTIONS, ORDER_AMOUNT, UNKNOWN_TOKEN, World

P = PaymentStatus
L = LinkStatus

#: Merchant action -> (command, fields, events it records when carried out).
PAYMENT_ACTIONS: dict[str, tuple[type[CommandBase], dict[str, Any], list[str]]] = {
    # The edit lowers the amount: the authorization it gives up is released.
    "edit_lines": (c.UpdateOrderLines, {}, ["order.lines_updated", "payment.released"]),
    "edit_customer": (c.UpdateCustomerDetails, {}, ["order.customer_updated"]),
    "capture": (c.CapturePayment, {"amount": 10_000}, ["payment.captured"]),
    "cancel": (c.CancelOrder, {}, ["order.cancelled"]),
    "release": (c.ReleaseRemainingAuthorization, {}, ["payment.released"]),
    "refund": (c.RefundPayment, {"amount": 10_000}, ["payment.refunded"]),
    # A refund of 100.00 with the fee withheld from it.
    "add_return_fee": (c.AddReturnFee, {}, ["payment.refunded", "order.return_fee_added"]),
}

#: Where each allowed action leads (orders of 1000.00; see World.in_payment_status).
PAYMENT_NEXT: dict[tuple[PaymentStatus, str], PaymentStatus] = {
    (P.AUTHORIZED, "edit_lines"): P.AUTHORIZED,
    (P.AUTHORIZED, "edit_customer"): P.AUTHORIZED,
    (P.AUTHORIZED, "capture"): P.PART_CAPTURED,
    (P.AUTHORIZED, "cancel"): P.CANCELLED,
    (P.PART_CAPTURED, "capture"): P.PART_CAPTURED,
    (P.PART_CAPTURED, "release"): P.CAPTURED,
    (P.PART_CAPTURED, "cancel"): P.CAPTURED,
    (P.PART_CAPTURED, "add_return_fee"): P.PART_REFUNDED,
    (P.PART_CAPTURED, "refund"): P.PART_REFUNDED,
    (P.PART_CAPTURED, "edit_lines"): P.PART_CAPTURED,
    (P.CAPTURED, "refund"): P.PART_REFUNDED,
    (P.CAPTURED, "add_return_fee"): P.PART_REFUNDED,
    (P.PART_REFUNDED, "refund"): P.PART_REFUNDED,
    (P.PART_REFUNDED, "add_return_fee"): P.PART_REFUNDED,
}

PAYMENT_PAIRS = [(status, action) for status in P for action in PAYMENT_ACTIONS]
PAYMENT_ALLOWED = [pair for pair in PAYMENT_PAIRS if pair[1] in ALLOWED_PAYMENT_ACTIONS[pair[0]]]
PAYMENT_REFUSED = [pair for pair in PAYMENT_PAIRS if pair not in PAYMENT_ALLOWED]


def _ids(pair: tuple[Any, str]) -> str:
    return f"{pair[0].value}-{pair[1]}"


def test_every_payment_status_and_action_pair_has_a_case():
    assert set(PAYMENT_ALLOWED) == set(PAYMENT_NEXT)
    assert len(PAYMENT_ALLOWED) + len(PAYMENT_REFUSED) == 7 * 7


@pytest.mark.parametrize("pair", PAYMENT_ALLOWED, ids=_ids)
def test_action_listed_for_the_payment_status_is_carried_out(pair: tuple[PaymentStatus, str]):
    # Given
    status, action = pair
    world = World().in_payment_status(status)
    cls, fields, event_types = PAYMENT_ACTIONS[action]
    # When
    outcome = world.do(cls, **fields)
    # Then
    assert outcome.status == "accepted", outcome
    assert [e.type for e in outcome.events] == event_types
    assert world.order.payment_status is PAYMENT_NEXT[pair]


#: Cancelling before checkout cancels the link instead (link axis below).
@pytest.mark.parametrize("action", sorted(set(PAYMENT_ACTIONS) - {"cancel"}))
def test_payment_action_before_checkout_is_refused(action: str):
    # Given: the link is out, nobody has paid
    world = World().in_link_status(L.IN_PROGRESS)
    watch = world.watch()
    cls, fields, _ = PAYMENT_ACTIONS[action]
    # When
    outcome = world.do(cls, **fields)
    # Then
    watch.assert_refused(outcome, "ACTION_NOT_ALLOWED_IN_STATUS")


def test_authorization_expiry_before_the_reservation_deadline_is_refused():
    # Given
    world = World().authorized()
    world.clock.advance(days=27)
    watch = world.watch()
    # When
    outcome = world.do(c.ExpireAuthorization)
    # Then
    watch.assert_refused(outcome, "RESERVATION_NOT_DUE")


def test_authorization_expiry_after_a_part_capture_releases_only_the_rest():
    # Given
    world = World().in_payment_status(P.PART_CAPTURED)
    world.clock.advance(days=28, seconds=1)
    # When
    outcome = world.do(c.ExpireAuthorization)
    # Then: the 700.00 still reserved is let go, the 300.00 captured stays refundable
    assert outcome.status == "accepted", outcome
    (event,) = outcome.events
    assert (event.type, event.released_amount) == ("payment.expired", 70_000)
    assert world.order.payment_status is P.CAPTURED
    assert world.order.balance.captured == 30_000
    assert world.do(c.RefundPayment, amount=5_000).status == "accepted"


def test_authorization_expiry_with_nothing_captured_makes_the_order_expired():
    # Given
    world = World().authorized()
    world.clock.advance(days=28, seconds=1)
    # When
    outcome = world.do(c.ExpireAuthorization)
    # Then
    assert outcome.status == "accepted", outcome
    assert world.order.payment_status is P.EXPIRED
    assert world.order.balance.released == ORDER_AMOUNT


def test_refunding_all_that_was_captured_of_a_part_captured_order_leaves_it_part_refunded():
    # Given: 300.00 of 1000.00 captured, 700.00 still reserved
    world = World().in_payment_status(P.PART_CAPTURED)
    # When
    outcome = world.do(c.RefundPayment)
    # Then: not REFUNDED, because part of the authorization is still reserved
    assert outcome.status == "accepted", outcome
    assert outcome.events[0].amount == 30_000
    assert world.order.payment_status is P.PART_REFUNDED
    assert world.order.balance.remaining(ORDER_AMOUNT) == 70_000


# ---- link axis ---------------------------------------------------------------------


def _open(world: World, token: str | None = None) -> Any:
    return world.open(token)


def _complete(world: World, token: str | None = None) -> Any:
    return world.complete(token)


def _expire(world: World) -> Any:
    """The scheduler's expiry of the current link, released at (or after) its deadline."""
    expires_at = world.order.link_expires_at
    assert expires_at is not None
    world.clock.current = max(world.clock.current, expires_at)
    return world.do(c.ExpirePaymentLink, link_id=str(world.link_id))


def _cancel(world: World) -> Any:
    return world.do(c.CancelOrder)


def _resend(world: World) -> Any:
    return world.do(c.ResendPaymentLink)


LINK_ACTIONS = {
    "open": _open,
    "complete": _complete,
    "expire": _expire,
    "cancel": _cancel,
    "resend": _resend,
}

#: (link status, action) -> the link status it leads to, or the code it is refused with.
LINK_OUTCOMES: dict[tuple[LinkStatus, str], LinkStatus | str] = {
    (L.CREATED, "open"): L.IN_PROGRESS,
    (L.CREATED, "complete"): L.COMPLETED,
    (L.CREATED, "expire"): L.EXPIRED,
    (L.CREATED, "cancel"): L.CANCELLED,
    (L.CREATED, "resend"): L.CREATED,
    (L.IN_PROGRESS, "open"): L.IN_PROGRESS,
    (L.IN_PROGRESS, "complete"): L.COMPLETED,
    (L.IN_PROGRESS, "expire"): L.EXPIRED,
    (L.IN_PROGRESS, "cancel"): L.CANCELLED,
    (L.IN_PROGRESS, "resend"): L.CREATED,
    (L.COMPLETED, "open"): "LINK_ALREADY_COMPLETED",
    (L.COMPLETED, "complete"): "LINK_ALREADY_COMPLETED",
    (L.COMPLETED, "expire"): "ACTION_NOT_ALLOWED_IN_STATUS",
    # After checkout, cancelling voids the authorization (payment axis); the link
    # stays COMPLETED.
    (L.COMPLETED, "cancel"): L.COMPLETED,
    (L.COMPLETED, "resend"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.CANCELLED, "open"): "LINK_CANCELLED",
    (L.CANCELLED, "complete"): "LINK_CANCELLED",
    (L.CANCELLED, "expire"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.CANCELLED, "cancel"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.CANCELLED, "resend"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.EXPIRED, "open"): "LINK_EXPIRED",
    (L.EXPIRED, "complete"): "LINK_EXPIRED",
    (L.EXPIRED, "expire"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.EXPIRED, "cancel"): "ACTION_NOT_ALLOWED_IN_STATUS",
    (L.EXPIRED, "resend"): L.CREATED,
}
LINK_ALLOWED = [pair for pair, then in LINK_OUTCOMES.items() if isinstance(then, LinkStatus)]
LINK_REFUSED = [pair for pair, then in LINK_OUTCOMES.items() if not isinstance(then, LinkStatus)]


def test_every_link_status_and_action_pair_has_a_case():
    assert set(LINK_OUTCOMES) == {(s, a) for s in L for a in LINK_ACTIONS}


@pytest.mark.parametrize("pair", LINK_ALLOWED, ids=_ids)
def test_link_action_allowed_in_the_link_status_moves_it_on(pair: tuple[LinkStatus, str]):
    # Given
    status, action = pair
    world = World().in_link_status(status)
    # When
    outcome = LINK_ACTIONS[action](world)
    # Then
    assert outcome.status == "accepted", outcome
    assert all(e.type != "order.rejected" for e in outcome.events)
    assert world.order.link_status is LINK_OUTCOMES[pair]


#: Every refused pair of both axes, with the code it is refused with.
REFUSED = [(s, a, "ACTION_NOT_ALLOWED_IN_STATUS") for s, a in PAYMENT_REFUSED] + [
    (s, a, str(LINK_OUTCOMES[s, a])) for s, a in LINK_REFUSED
]


def _in_status(status: PaymentStatus | LinkStatus) -> World:
    if isinstance(status, PaymentStatus):
        return World().in_payment_status(status)
    return World().in_link_status(status)


def _act(world: World, status: PaymentStatus | LinkStatus, action: str) -> Any:
    if isinstance(status, PaymentStatus):
        cls, fields, _ = PAYMENT_ACTIONS[action]
        return world.do(cls, **fields)
    return LINK_ACTIONS[action](world)


@pytest.mark.parametrize(
    ("status", "action", "code"),
    REFUSED,
    ids=[f"{type(s).__name__}.{s.value}-{a}" for s, a, _ in REFUSED],
)
def test_action_refused_in_the_status_has_its_code_and_changes_nothing(
    status: PaymentStatus | LinkStatus, action: str, code: str
):
    # Given
    world = _in_status(status)
    watch = world.watch()
    # When
    outcome = _act(world, status, action)
    # Then
    watch.assert_refused(outcome, code)


def test_resend_issues_a_new_live_token_after_expiry():
    # Given
    world = World().in_link_status(L.EXPIRED)
    # When
    world.do(c.ResendPaymentLink)
    # Then
    assert world.open().status == "accepted"
    assert world.order.link_status is L.IN_PROGRESS


@pytest.mark.parametrize("use", [_open, _complete], ids=["open", "complete"])
def test_superseded_token_is_refused_with_link_superseded(use: Any):
    # Given
    world = World().sent_order()
    old_token = world.token
    world.do(c.ResendPaymentLink)
    watch = world.watch()
    # When
    outcome = use(world, old_token)
    # Then
    watch.assert_refused(outcome, "LINK_SUPERSEDED")


def test_token_no_order_issued_is_refused_with_link_unknown():
    # Given
    world = World().sent_order()
    watch = world.watch()
    # When
    outcome = world.open(UNKNOWN_TOKEN)
    # Then
    watch.assert_refused(outcome, "LINK_UNKNOWN")


def test_token_past_its_deadline_is_expired_before_the_scheduler_says_so():
    # Given: 48 hours passed, the expiry command has not arrived yet
    world = World().in_link_status(L.IN_PROGRESS)
    world.clock.advance(hours=48)
    watch = world.watch()
    # When
    outcome = world.complete()
    # Then
    watch.assert_refused(outcome, "LINK_EXPIRED")


def test_link_expiry_before_the_deadline_is_refused_with_link_not_due():
    # Given
    world = World().in_link_status(L.IN_PROGRESS)
    world.clock.advance(hours=47, minutes=59)
    watch = world.watch()
    # When
    outcome = world.do(c.ExpirePaymentLink, link_id=str(world.link_id))
    # Then
    watch.assert_refused(outcome, "LINK_NOT_DUE")


def test_expiry_of_a_superseded_link_does_not_expire_the_resent_one():
    # Given: the first link's expiry is due, but the link was resent an hour before
    world = World().sent_order()
    first_link = world.link_id
    world.clock.advance(hours=47)
    world.do(c.ResendPaymentLink)
    world.clock.advance(hours=1)
    watch = world.watch()
    # When
    outcome = world.do(c.ExpirePaymentLink, link_id=str(first_link))
    # Then
    watch.assert_refused(outcome, "LINK_SUPERSEDED")
    assert world.open().status == "accepted"


def test_link_completed_just_before_its_deadline_stays_completed_when_expiry_arrives_after():
    # Given
    world = World().in_link_status(L.IN_PROGRESS)
    link_id = world.link_id
    world.clock.advance(seconds=LINK_TTL.total_seconds() - 1)
    assert world.complete().status == "accepted"
    world.clock.advance(seconds=1)
    watch = world.watch()
    # When
    outcome = world.do(c.ExpirePaymentLink, link_id=str(link_id))
    # Then
    watch.assert_refused(outcome, "ACTION_NOT_ALLOWED_IN_STATUS")
    assert world.order.link_status is L.COMPLETED
    assert world.order.payment_status is P.AUTHORIZED


def test_link_cancelled_before_it_went_out_is_never_sent():
    # Given: created, the send-link command still queued, then cancelled
    world = World()
    world.configure()
    world.create()
    world.ok(c.CancelOrder)
    watch = world.watch()
    # When
    outcome = world.deliver()
    # Then
    watch.assert_refused(outcome, "ACTION_NOT_ALLOWED_IN_STATUS")
    assert world.notifier.sent == []
