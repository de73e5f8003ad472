"""Who may issue which merchant command (domain.permissions), row by row.

Each case brings the order into a state where the command would be carried out, then
issues it as one role: an allowed role gets it done, any other role gets
``ROLE_NOT_ALLOWED`` and nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from domain.permissions import ORDER_ROLES, PERMISSIONS
from domain.status import PaymentStatus
from messages import commands as c
from messages.common import MerchantCommand, Role
from messages.routing import ROUTES
from tests.unit.builders import OTHER_STORE_ID, STORE_ID, World, actor

#: paylink's split of the merchant commands between the portal roles (x = may issue).
#: Written out here so that any change to domain.permissions is a visible decision.
TABLE = """
                               Admin SuperAdmin Disputes Settlement ExternalUser User Developer ReadOnly Support
ConfigureStore                 x     x          .        .          .            .    .         .        .
CreateOrder                    x     x          x        x          x            x    .         .        .
ResendPaymentLink              x     x          x        x          x            x    .         .        .
CancelOrder                    x     x          x        x          x            x    .         .        .
CapturePayment                 x     x          .        x          x            x    .         .        .
ReleaseRemainingAuthorization  x     x          .        x          .            x    .         .        .
RefundPayment                  x     x          x        x          .            x    .         .        .
AddReturnFee                   x     x          x        x          .            x    .         .        .
UpdateOrderLines               x     x          .        x          .            x    .         .        .
UpdateCustomerDetails          x     x          x        x          x            x    .         .        .
EraseCustomerData              x     x          .        .          .            .    .         .        .
"""
COLUMNS = list(Role)
SIX_SEED_ROLES = {"Admin", "Super Admin", "Disputes", "Settlement", "External User", "User"}


def _parse(table: str) -> dict[str, frozenset[Role]]:
    header, *rows = (row.split() for row in table.strip().splitlines())
    assert header == [role.value.replace(" ", "") for role in COLUMNS]
    return {
        name: frozenset(role for role, mark in zip(COLUMNS, marks, strict=True) if mark == "x")
        for name, *marks in rows
    }


EXPECTED = _parse(TABLE)


def _command_class(name: str) -> type[MerchantCommand]:
    cls = getattr(c, name)
    assert issubclass(cls, MerchantCommand)
    return cls


#: For each command, a world in which it would be carried out by an allowed role.
GIVEN: dict[str, Callable[[World], object]] = {
    "ConfigureStore": lambda w: None,
    "CreateOrder": lambda w: w.configure(),
    "ResendPaymentLink": lambda w: w.sent_order(),
    "CancelOrder": lambda w: w.authorized(),
    "CapturePayment": lambda w: w.authorized(),
    "ReleaseRemainingAuthorization": lambda w: w.in_payment_status(PaymentStatus.PART_CAPTURED),
    "RefundPayment": lambda w: w.in_payment_status(PaymentStatus.CAPTURED),
    "AddReturnFee": lambda w: w.in_payment_status(PaymentStatus.CAPTURED),
    "UpdateOrderLines": lambda w: w.authorized(),
    "UpdateCustomerDetails": lambda w: w.authorized(),
    "EraseCustomerData": lambda w: w.authorized(),
}

ALLOWED = [(name, role) for name, roles in EXPECTED.items() for role in COLUMNS if role in roles]
REFUSED = [
    (name, role) for name, roles in EXPECTED.items() for role in COLUMNS if role not in roles
]


def _given(name: str) -> World:
    world = World()
    GIVEN[name](world)
    return world


def test_permission_table_is_the_documented_split():
    assert dict(PERMISSIONS) == EXPECTED


def test_every_merchant_command_has_a_row_in_the_table():
    merchant_commands = {r.command_type for r in ROUTES if issubclass(r.model, MerchantCommand)}
    assert set(PERMISSIONS) == merchant_commands == set(GIVEN)


def test_the_table_covers_every_pair_of_command_and_role():
    assert len(ALLOWED) + len(REFUSED) == len(EXPECTED) * len(Role) == 99


@pytest.mark.parametrize(("name", "role"), ALLOWED)
def test_allowed_role_gets_the_command_carried_out(name: str, role: Role):
    # Given
    world = _given(name)
    # When
    outcome = world.do(_command_class(name), actor=actor(role))
    # Then
    assert outcome.status == "accepted", outcome
    assert all(e.type != "order.rejected" for e in outcome.events)


@pytest.mark.parametrize(("name", "role"), REFUSED)
def test_role_outside_the_row_is_refused_and_nothing_changes(name: str, role: Role):
    # Given
    world = _given(name)
    watch = world.watch()
    # When
    outcome = world.do(_command_class(name), actor=actor(role))
    # Then
    watch.assert_refused(outcome, "ROLE_NOT_ALLOWED")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_acting_on_a_store_the_actor_does_not_hold_is_refused(name: str):
    # Given: an Admin (allowed everything) who holds only another store
    world = _given(name)
    watch = world.watch()
    outsider = actor(Role.ADMIN, stores=[OTHER_STORE_ID])
    # When
    outcome = world.do(_command_class(name), actor=outsider, **_store_field(name))
    # Then: a command naming the store is refused for it; one reaching another store's
    # order through its id hears what an unknown order would (no existence oracle)
    code = "STORE_ACCESS_DENIED" if _store_field(name) else "ORDER_NOT_FOUND"
    watch.assert_refused(outcome, code)
    if not _store_field(name):
        assert STORE_ID not in outcome.events[0].message


def _store_field(name: str) -> dict[str, str]:
    """Commands that name a store name ours; the others reach it through the order."""
    return {"store_id": STORE_ID} if "store_id" in _command_class(name).model_fields else {}


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if not _store_field(n)))
def test_another_stores_order_is_answered_like_an_unknown_one(name: str):
    # Given: one order of ours, and an Admin of another store
    world = _given(name)
    outsider = actor(Role.ADMIN, stores=[OTHER_STORE_ID])
    # When: the outsider names our order, and then an order that does not exist
    foreign = world.do(_command_class(name), actor=outsider)
    missing = world.do(_command_class(name), actor=outsider, order_id=str(uuid.uuid4()))
    # Then: both answers are the same but for the order id, and go to the asker's store
    (a,), (b,) = foreign.events, missing.events
    assert (a.code, a.store_id) == (b.code, b.store_id) == ("ORDER_NOT_FOUND", OTHER_STORE_ID)
    assert a.message.replace(str(a.order_id), "X") == b.message.replace(str(b.order_id), "X")


def test_holding_one_of_several_stores_is_enough():
    # Given
    world = World().authorized()
    both = actor(Role.USER, stores=[OTHER_STORE_ID, STORE_ID])
    # When
    outcome = world.do(c.CapturePayment, actor=both)
    # Then
    assert outcome.status == "accepted", outcome


def test_only_the_six_seed_roles_may_create_orders():
    assert {r.value for r in ORDER_ROLES} == SIX_SEED_ROLES
    assert {r.value for r in PERMISSIONS["CreateOrder"]} == SIX_SEED_ROLES


def test_roles_that_may_not_create_orders_may_do_nothing_else_either():
    non_order_roles = set(Role) - ORDER_ROLES
    assert {r.value for r in non_order_roles} == {"Developer", "Read Only", "Support"}
    for name, roles in PERMISSIONS.items():
        assert not roles & non_order_roles, name
