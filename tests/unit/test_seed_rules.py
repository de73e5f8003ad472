"""One test (or one parametrized family) per rule the seed documents state.

Seed 000: who may create orders, T&C and agreement currencies, the 48-hour link,
no edits once sent, resending. Seed 004: the statuses and their actions. DESIGN:
auto-capture, idempotency, rejections as events, link delivery, token hashing.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from domain.errors import DeliveryDeferred, DeliveryRejected
from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from domain.outcomes import Outcome
from domain.permissions import ORDER_ROLES
from domain.ports import LINK_TTL, NotificationState
from domain.status import PAYMENT_ACTIONS, LinkStatus, PaymentAction, PaymentStatus
from messages import commands as c
from messages.common import CommandBase, Role
from tests.fakes import RecordingNotifier
from tests.unit.builders import (
    MINIMAL,
    ORDER_AMOUNT,
    SEED_PAYMENT_ACTIONS,
    World,
    actor,
    build,
)
from workers.runtime.composition import SecretTokens

#: DESIGN section 1, as written there.
DESIGN_COUNTRIES = (
    "SE SEK, NO NOK, FI EUR, DK DKK, GB GBP, DE/NL/AT/ES/FR/BE EUR, CH CHF, US USD, PL PLN"
)
COUNTRY_CURRENCY = [
    (country, currency)
    for item in DESIGN_COUNTRIES.split(", ")
    for countries, currency in [item.split()]
    for country in countries.split("/")
]
ALL_CURRENCIES = sorted({currency for _, currency in COUNTRY_CURRENCY})

# ---- seed 000: who, and what a store needs -------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=[r.name for r in Role])
def test_only_the_six_portal_roles_may_create_orders(role: Role):
    # Given
    world = World()
    world.configure()
    # When
    outcome = world.do(c.CreateOrder, actor=actor(role))
    # Then
    if role in ORDER_ROLES:
        assert outcome.status == "accepted", outcome
    else:
        assert (outcome.status, outcome.code) == ("rejected", "ROLE_NOT_ALLOWED")
        assert world.order_id not in world.db.orders


@pytest.mark.parametrize(
    "configured", [True, False], ids=["store-without-terms", "store-never-configured"]
)
def test_order_for_a_store_without_terms_is_refused(configured: bool):
    # Given
    world = World()
    if configured:
        world.configure(terms_url=None)
    watch = world.watch()
    # When
    outcome = world.do(c.CreateOrder)
    # Then
    watch.assert_refused(outcome, "TERMS_NOT_CONFIGURED")


def test_link_cannot_be_resent_once_the_terms_were_removed():
    # Given: seed 000, without T&C "you will not be able to create or send order(s)"
    world = World().sent_order()
    world.configure(terms_url=None)
    watch = world.watch()
    # When
    outcome = world.do(c.ResendPaymentLink)
    # Then
    watch.assert_refused(outcome, "TERMS_NOT_CONFIGURED")


def test_currency_outside_the_agreement_is_refused_and_says_to_contact_support():
    # Given: a store that agreed SEK only, and a German customer (EUR)
    world = World()
    world.configure(agreement_currencies=["SEK"])
    watch = world.watch()
    # When
    outcome = world.do(c.CreateOrder, purchase_country="DE")
    # Then
    watch.assert_refused(outcome, "CURRENCY_NOT_IN_AGREEMENT")
    assert "contact support" in watch.new_events[0].message


@pytest.mark.parametrize(("country", "currency"), COUNTRY_CURRENCY)
def test_purchase_country_decides_the_currency(country: str, currency: str):
    # Given
    world = World()
    world.configure(agreement_currencies=ALL_CURRENCIES)
    # When
    outcome = world.ok(c.CreateOrder, purchase_country=country)
    # Then
    assert world.order.currency == currency
    assert outcome.events[0].currency == currency


def test_purchase_currency_that_contradicts_the_country_is_refused():
    # Given
    world = World()
    world.configure(agreement_currencies=ALL_CURRENCIES)
    watch = world.watch()
    # When
    outcome = world.do(c.CreateOrder, purchase_country="SE", purchase_currency="EUR")
    # Then
    watch.assert_refused(outcome, "CURRENCY_COUNTRY_MISMATCH")


# ---- seed 000: the 48-hour link, no edits once sent, resending --------------------------


def test_link_expires_48_hours_after_it_was_created():
    # Given
    world = World()
    world.configure()
    created_at = world.clock.now()
    # When
    outcome = world.ok(c.CreateOrder)
    # Then
    assert world.order.link_expires_at == created_at + LINK_TTL
    assert outcome.events[0].link_expires_at == created_at + LINK_TTL
    assert LINK_TTL.total_seconds() == 48 * 3600


def test_link_opens_at_47_hours_59_minutes():
    # Given
    world = World().sent_order()
    world.clock.advance(hours=47, minutes=59)
    # When
    outcome = world.open()
    # Then
    assert outcome.status == "accepted", outcome
    assert world.order.link_status is LinkStatus.IN_PROGRESS


def test_link_is_dead_at_48_hours():
    # Given
    world = World().sent_order()
    world.clock.advance(hours=48)
    watch = world.watch()
    # When
    outcome = world.open()
    # Then
    watch.assert_refused(outcome, "LINK_EXPIRED")


def _aimed_at(world: World, cls: type[CommandBase]) -> CommandBase:
    """``cls`` aimed at the order under test, its current link and token."""
    fields: dict[str, Any] = {}
    if "token" in cls.model_fields:
        fields["token"] = world.token
    if "link_id" in cls.model_fields:
        fields["link_id"] = str(world.link_id)
    return world.command(cls, **fields)


def _order_content(world: World) -> tuple[Any, ...]:
    o = world.order
    return o.lines, o.customer, o.currency, o.merchant_reference1, o.merchant_reference2


@pytest.mark.parametrize("status", [LinkStatus.CREATED, LinkStatus.IN_PROGRESS])
@pytest.mark.parametrize("cls", [c.UpdateOrderLines, c.UpdateCustomerDetails])
def test_order_cannot_be_edited_once_sent(status: LinkStatus, cls: type[CommandBase]):
    # Given
    world = World().in_link_status(status)
    watch = world.watch()
    # When
    outcome = world.do(cls)
    # Then
    watch.assert_refused(outcome, "ACTION_NOT_ALLOWED_IN_STATUS")


#: A privacy request is the one exception: the customer's data goes whatever the status.
CONTENT_KEEPING = [cls for cls in MINIMAL if cls is not c.EraseCustomerData]


@pytest.mark.parametrize("status", [LinkStatus.CREATED, LinkStatus.IN_PROGRESS])
@pytest.mark.parametrize("cls", CONTENT_KEEPING, ids=[cls.__name__ for cls in CONTENT_KEEPING])
def test_no_command_changes_the_order_content_while_the_link_is_out(
    status: LinkStatus, cls: type[CommandBase]
):
    # Given
    world = World().in_link_status(status)
    content = _order_content(world)
    # When
    world.run(_aimed_at(world, cls))
    # Then
    assert _order_content(world) == content


def test_resend_issues_a_new_token_with_a_new_48_hour_window_and_kills_the_old_one():
    # Given: a link opened a day ago
    world = World().in_link_status(LinkStatus.IN_PROGRESS)
    old_token, old_link = world.token, world.link_id
    world.clock.advance(hours=24)
    # When
    outcome = world.ok(c.ResendPaymentLink)
    # Then
    (resent,) = outcome.events
    assert resent.type == "link.resent"
    assert resent.superseded_link_id == old_link
    assert world.token != old_token
    assert world.order.link_status is LinkStatus.CREATED
    assert world.order.link_expires_at == world.clock.now() + LINK_TTL
    assert world.pending_sends()[-1].token == world.token
    assert world.open(old_token).code == "LINK_SUPERSEDED"
    assert world.open().status == "accepted"


# ---- auto-capture, seed 004 statuses -----------------------------------------------------


def test_auto_capture_captures_the_full_amount_at_completion():
    # Given
    world = World().sent_order(auto_capture=True)
    # When
    outcome = world.complete()
    # Then
    assert outcome.status == "accepted", outcome
    assert [e.type for e in outcome.events] == ["order.completed", "payment.captured"]
    captured = outcome.events[1]
    assert (captured.amount, captured.auto_capture) == (ORDER_AMOUNT, True)
    assert world.order.payment_status is PaymentStatus.CAPTURED


def test_without_auto_capture_completion_only_authorizes():
    # Given
    world = World().sent_order(auto_capture=False)
    # When
    outcome = world.complete()
    # Then
    assert [e.type for e in outcome.events] == ["order.completed"]
    assert world.order.payment_status is PaymentStatus.AUTHORIZED


def test_every_payment_status_lists_exactly_the_actions_seed_004_lists():
    merchant_actions = {
        status: frozenset(a.value for a in actions if a is not PaymentAction.EXPIRE)
        for status, actions in PAYMENT_ACTIONS.items()
    }
    # Seed 004 names "Cancel / Release the uncaptured portion" as one action.
    seed = dict(SEED_PAYMENT_ACTIONS)
    seed[PaymentStatus.PART_CAPTURED] |= {"cancel"}
    assert merchant_actions == seed
    assert set(SEED_PAYMENT_ACTIONS) == set(PaymentStatus)


# ---- idempotency and rejections ------------------------------------------------------------


def test_duplicate_command_has_no_second_effect_and_republishes_the_same_events():
    # Given
    world = World().authorized()
    capture = world.command(c.CapturePayment, amount=10_000)
    first = world.run(capture)
    watch = world.watch()
    # When
    again = world.run(capture)
    # Then
    assert again.status == "duplicate"
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert [e.event_id for e in watch.new_events] == [e.event_id for e in first.events]
    assert watch.unchanged()
    assert world.order.balance.captured == 10_000


def test_duplicate_of_a_rejected_command_republishes_the_same_rejection():
    # Given
    world = World().authorized()
    refund = world.command(c.RefundPayment, amount=10_000)
    first = world.run(refund)
    world.ok(c.CapturePayment)
    watch = world.watch()
    # When: the refund would now be allowed, but it was already answered
    again = world.run(refund)
    # Then
    assert first.code == "ACTION_NOT_ALLOWED_IN_STATUS"
    assert again.status == "duplicate"
    assert [e.event_id for e in watch.new_events] == [e.event_id for e in first.events]
    assert watch.unchanged()


def test_same_command_id_with_a_different_payload_is_refused_as_a_conflict():
    # Given
    world = World().authorized()
    capture = world.command(c.CapturePayment, amount=10_000)
    world.run(capture)
    watch = world.watch()
    # When
    other = world.command(c.CapturePayment, amount=20_000, command_id=str(capture.command_id))
    outcome = world.run(other)
    # Then
    watch.assert_refused(outcome, "DUPLICATE_COMMAND_CONFLICT")
    assert world.order.balance.captured == 10_000


def test_rejection_is_published_as_order_rejected_with_command_id_code_and_message():
    # Given
    world = World().authorized()
    # When
    outcome = world.do(c.CapturePayment, amount=ORDER_AMOUNT + 1)
    # Then
    (event,) = world.db.events[-1:]
    assert outcome.events == [event]
    assert event.type == "order.rejected"
    assert event.command_id == outcome.command_id
    assert event.command_type == "CapturePayment"
    assert event.order_id == world.order_id
    assert event.code == "CAPTURE_EXCEEDS_REMAINING"
    assert "exceeds the remaining authorization" in event.message


# ---- delivering the link -------------------------------------------------------------------


class WorkerCrashed(Exception):
    """The worker died after the provider accepted the message, before the commit."""


@dataclass
class CrashingAfterSend(RecordingNotifier):
    crashes: int = 1

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        receipt = super().send(notification)
        if self.crashes:
            self.crashes -= 1
            raise WorkerCrashed
        return receipt


def _created(notifier: RecordingNotifier | None = None) -> World:
    world = World(notifier)
    world.configure()
    world.create()
    return world


def test_send_link_sends_once_and_records_the_provider_id():
    # Given
    world = _created()
    # When
    outcome = world.deliver()
    # Then
    (sent,) = outcome.events
    assert (sent.type, sent.provider_message_id) == ("link.sent", "msg-1")
    assert len(world.notifier.sent) == 1
    assert world.notifier.sent[0].link_url.endswith("/" + world.token)
    assert world.notification().state is NotificationState.SENT


def test_send_link_redelivered_after_it_was_sent_does_not_send_again():
    # Given
    world = _created()
    first = world.deliver()
    # When
    again = world.deliver()
    # Then
    assert again.status == "duplicate"
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert len(world.notifier.sent) == 1


def test_link_the_provider_refuses_for_good_is_marked_failed_and_not_retried():
    # Given
    world = _created(RecordingNotifier(fail_with=DeliveryRejected("invalid number")))
    # When
    outcome = world.deliver()
    # Then
    assert outcome.status == "accepted"
    (failed,) = outcome.events
    assert (failed.type, failed.reason) == ("link.delivery_failed", "invalid number")
    assert world.notification().state is NotificationState.FAILED
    world.notifier.fail_with = None
    assert world.deliver().status == "duplicate"
    assert world.notifier.sent == []


def test_link_the_provider_defers_is_retried_and_then_sent_once():
    # Given
    world = _created(RecordingNotifier(fail_with=DeliveryDeferred("429", retry_after=5)))
    with pytest.raises(DeliveryDeferred):
        world.deliver()
    assert world.notification().state is NotificationState.DEFERRED
    world.notifier.fail_with = None
    # When
    outcome = world.deliver()
    # Then
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(world.notifier.sent) == 1
    assert world.notification().uncertain_attempts == 0


@dataclass
class CrashingBeforeSend(RecordingNotifier):
    crashes: int = 1

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        if self.crashes:
            self.crashes -= 1
            raise WorkerCrashed
        return super().send(notification)


def _after_crash(notifier: RecordingNotifier) -> tuple[World, Outcome]:
    """The redelivered send-link after a worker died mid-send (attempt committed)."""
    world = _created(notifier)
    with pytest.raises(WorkerCrashed):
        world.deliver()
    assert world.notification().state is NotificationState.ATTEMPTING
    return world, world.deliver()


def _counts(world: World) -> tuple[NotificationState, int, int, int]:
    record = world.notification()
    return record.state, record.attempts, record.uncertain_attempts, record.blind_resends


def test_crash_after_the_provider_accepted_finds_the_message_and_does_not_send_again():
    # Given: the provider accepted the message, the worker died before recording it
    # When
    world, outcome = _after_crash(CrashingAfterSend())
    # Then
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(world.notifier.sent) == 1
    assert len(world.notifier.looked_up) == 1
    assert _counts(world) == (NotificationState.SENT, 2, 1, 0)
    assert world.notification().provider_message_id == "msg-1"
    assert outcome.events[0].provider_message_id == "msg-1"


def test_crash_before_the_provider_call_sends_once_after_the_provider_says_not_sent():
    # When
    world, outcome = _after_crash(CrashingBeforeSend())
    # Then
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(world.notifier.sent) == 1
    assert _counts(world) == (NotificationState.SENT, 2, 1, 0)


def test_crash_with_a_provider_that_cannot_tell_sends_again_and_counts_a_possible_duplicate():
    # When
    world, outcome = _after_crash(CrashingAfterSend(can_find=False))
    # Then
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(world.notifier.sent) == 2
    assert _counts(world) == (NotificationState.SENT, 2, 1, 1)


def test_a_blind_resend_is_counted_before_it_is_sent_so_a_second_crash_keeps_the_count():
    # Given: the worker dies after the provider accepted, twice; the provider cannot tell
    world = _created(CrashingAfterSend(can_find=False, crashes=2))
    for _ in range(2):
        with pytest.raises(WorkerCrashed):
            world.deliver()
    # Then: the second (blind) send was counted although its answer was never recorded
    assert _counts(world) == (NotificationState.ATTEMPTING, 2, 1, 1)
    # When it finally goes through
    world.deliver()
    # Then: three messages, two of them possible duplicates, both counted
    assert len(world.notifier.sent) == 3
    assert _counts(world) == (NotificationState.SENT, 3, 2, 2)


def test_attempts_that_die_before_asking_the_provider_are_uncertain_but_never_duplicates():
    # Given: the first attempt died after the provider accepted; the second died
    # before it could ask (its lookup raised: the process was killed)
    world = _created(CrashingBeforeLookup())
    for _ in range(2):
        with pytest.raises(WorkerCrashed):
            world.deliver()
    # When
    world.deliver()
    # Then: two uncertain attempts, the message found, nothing sent twice
    assert len(world.notifier.sent) == 1
    assert _counts(world) == (NotificationState.SENT, 3, 2, 0)


@dataclass
class CrashingBeforeLookup(CrashingAfterSend):
    """Dies after the first send, then once more as the next attempt asks."""

    lookup_crashes: int = 1

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        if self.lookup_crashes:
            self.lookup_crashes -= 1
            raise WorkerCrashed
        return super().find(notification)


def test_a_send_without_an_uncertain_attempt_before_it_never_asks_the_provider():
    # Given: deferred once (an answer was recorded), then sent
    world = _created(RecordingNotifier(fail_with=DeliveryDeferred("429", retry_after=5)))
    with pytest.raises(DeliveryDeferred):
        world.deliver()
    world.notifier.fail_with = None
    # When
    world.deliver()
    # Then
    assert world.notifier.looked_up == []
    assert _counts(world) == (NotificationState.SENT, 2, 0, 0)


# ---- tokens ------------------------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes():
    # Given
    world = World().sent_order()
    world.ok(c.ResendPaymentLink)
    # When
    stored = repr(world.db.orders) + repr(world.db.events) + repr(world.db.notifications)
    # Then
    for token in world.ctx.tokens.issued:  # type: ignore[attr-defined]
        assert token not in stored
    assert [link.token_hash for link in world.order.links] == [
        hashlib.sha256(t.encode()).hexdigest()
        for t in world.ctx.tokens.issued  # type: ignore[attr-defined]
    ]


def test_the_tokens_paylink_issues_carry_256_random_bits():
    # Given the token generator the service runs with
    tokens = SecretTokens()
    # When
    issued = {tokens.new_token() for _ in range(1000)}
    # Then: all distinct, 32 bytes each, and they fit the wire format
    assert len(issued) == 1000
    for token in list(issued)[:20]:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 == 256
        assert build(c.PaymentLinkOpened, token=token).token == token


def test_a_resent_command_with_a_fresh_issued_at_is_a_duplicate_not_a_conflict() -> None:
    from datetime import timedelta

    from domain.outcomes import payload_hash
    from messages import commands as c
    from tests.unit.builders import build

    # Given a command, When upstream re-sends it later with a new issued_at
    first = build(c.CapturePayment, amount=500)
    again = first.model_copy(update={"issued_at": first.issued_at + timedelta(minutes=5)})
    changed = first.model_copy(update={"amount": 600})
    # Then it hashes the same, and a changed amount does not
    assert payload_hash(again) == payload_hash(first)
    assert payload_hash(changed) != payload_hash(first)


def test_every_opening_of_a_live_link_is_answered_and_only_the_first_moves_the_order():
    world = World().sent_order()
    (first,) = world.ok(c.PaymentLinkOpened, token=world.token).events
    (again,) = world.ok(c.PaymentLinkOpened, token=world.token).events
    assert (first.type, first.first_open, again.type, again.first_open) == (
        "link.opened",
        True,
        "link.opened",
        False,
    )
    assert world.order.link_status.value == "IN_PROGRESS"


# ---- erasure of a customer's data -------------------------------------------------------


def test_erasing_a_customer_removes_contact_data_and_keeps_the_money():
    # Given: a captured order, and the customer's request to be forgotten
    world = World().authorized()
    world.ok(c.CapturePayment, amount=10_000)
    ledger = list(world.order.ledger)
    # When
    (event,) = world.ok(c.EraseCustomerData, email="anna@example.com").events
    # Then: the contact is gone, the channel and the money are not, and nothing personal
    # is on the bus
    order = world.order
    assert (order.customer.email, order.customer.phone, order.customer.name) == (None, None, None)
    assert (order.channel, order.ledger) == ("email", ledger)
    assert event.type == "order.customer_erased"
    assert "anna" not in event.model_dump_json()
    assert world.do(c.RefundPayment, amount=10_000).status == "accepted"


def test_a_link_is_never_sent_to_an_erased_customer():
    world = World()
    world.configure()
    world.create()
    world.ok(c.EraseCustomerData, email="anna@example.com")
    outcome = world.deliver()
    assert (outcome.status, outcome.code) == ("rejected", "CUSTOMER_ERASED")
    assert world.notifier.sent == []


def test_erasure_touches_only_the_stores_orders_with_that_contact():
    world = World().sent_order()
    outcome = world.ok(c.EraseCustomerData, email="someone.else@example.com")
    assert outcome.events == []
    assert world.order.customer.email == "anna@example.com"


def test_a_second_send_of_a_sent_link_with_a_fresh_command_id_sends_nothing():
    # Given a link that went out
    world = World().sent_order()
    send = world.pending_sends()[-1]
    # When someone publishes the same send again under a new command id
    again = send.model_copy(update={"command_id": uuid.uuid4()})
    outcome = world.run(again)
    # Then the customer gets nothing more
    assert (outcome.status, outcome.code) == ("rejected", "LINK_ALREADY_SENT")
    assert len(world.notifier.sent) == 1


def test_a_rejection_names_the_order_and_store_paylink_knows_for_the_command():
    # Given an order whose link is paid, and one more capture than it allows
    world = World().authorized()
    world.ok(c.CapturePayment)
    # When a management command and a checkout command are refused
    (capture,) = world.do(c.CapturePayment, amount=1).events
    (checkout,) = world.do(c.PaymentLinkOpened, token=world.token).events
    # Then both rejections name the order and its store (the checkout one through its token)
    assert (capture.code, capture.order_id, capture.store_id) == (
        "ACTION_NOT_ALLOWED_IN_STATUS",
        world.order_id,
        world.order.store_id,
    )
    assert (checkout.code, checkout.order_id, checkout.store_id) == (
        "LINK_ALREADY_COMPLETED",
        world.order_id,
        world.order.store_id,
    )
