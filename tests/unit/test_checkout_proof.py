"""The hosted checkout's proof on CheckoutCompleted: made by the checkout, checked by
the worker before anything about the link is read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from messages import commands as c
from tests.unit.builders import World
from workers.runtime.checkout_proof import HmacCheckoutProofs, sign

KEY = ("k1", b"a secret only the checkout and the workers hold")


def _world(*, required: bool) -> World:
    world = World().sent_order()
    proofs = HmacCheckoutProofs(dict([KEY]), required=required, clock=world.clock.now)
    world.ctx = dataclasses.replace(world.ctx, checkout_proofs=proofs)
    return world


def _completed(world: World, **fields: object) -> c.CheckoutCompleted:
    fields.setdefault("authorized_amount", world.order.order_amount)
    return world.command(c.CheckoutCompleted, token=world.token, **fields)


def test_a_signed_report_completes_the_order():
    world = _world(required=True)
    outcome = world.run(sign(_completed(world), *KEY, world.clock.now()))
    assert [e.type for e in outcome.events] == ["order.completed"]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda cmd, now: cmd, id="no proof"),
        pytest.param(lambda cmd, now: sign(cmd, "k1", b"a guessed key", now), id="wrong key"),
        pytest.param(lambda cmd, now: sign(cmd, "k9", KEY[1], now), id="unknown key id"),
        pytest.param(
            lambda cmd, now: sign(cmd, *KEY, now).model_copy(
                update={"authorization_id": "auth-invented"}
            ),
            id="changed after signing",
        ),
        pytest.param(
            lambda cmd, now: sign(cmd, *KEY, now - timedelta(hours=2)), id="signed too long ago"
        ),
    ],
)
def test_an_unproven_report_is_refused_and_changes_nothing(
    forge: Callable[[c.CheckoutCompleted, datetime], c.CheckoutCompleted],
) -> None:
    world = _world(required=True)
    watch = world.watch()
    outcome = world.run(forge(_completed(world), world.clock.now()))
    watch.assert_refused(outcome, "CHECKOUT_PROOF_INVALID")


def test_without_the_requirement_a_report_without_proof_is_accepted_but_a_bad_one_is_not():
    world = _world(required=False)
    bad = sign(_completed(world), "k1", b"a guessed key", world.clock.now())
    assert world.run(bad).code == "CHECKOUT_PROOF_INVALID"
    assert world.run(_completed(world)).status == "accepted"
