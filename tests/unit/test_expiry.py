"""The scheduler's many-at-once link expiry agrees with the aggregate's, case by case.

For every link status, before, at and after the deadline: ``domain.expiry`` (what the
scheduler applies to rows) and ``ExpirePaymentLink`` through ``domain.bus.handle`` (what a
worker applies to a whole order) accept or refuse alike, with the same code, the same
resulting status and deadline, and the same event.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.expiry import DueLink, expire_due_links
from domain.status import LinkStatus
from messages import commands as c
from messages.events import LinkExpired
from tests.unit.builders import World

OFFSETS = {"before": timedelta(seconds=-1), "at": timedelta(0), "after": timedelta(hours=3)}


@pytest.mark.parametrize("offset", list(OFFSETS))
@pytest.mark.parametrize("status", list(LinkStatus))
def test_set_based_expiry_matches_the_aggregate(status: LinkStatus, offset: str) -> None:
    world = World().in_link_status(status)
    order = world.order
    link = order.current_link
    assert link is not None
    world.clock.current = link.expires_at + OFFSETS[offset]
    now = world.clock.now()
    due = DueLink(order.order_id, order.store_id, order.link_status, link.link_id, link.expires_at)
    command_id = uuid.uuid4()

    applied, refused = expire_due_links([due], now, lambda _: command_id)
    outcome = world.run(
        c.ExpirePaymentLink(
            command_id=command_id, issued_at=now, order_id=order.order_id, link_id=link.link_id
        )
    )

    after = world.order
    if outcome.status == "accepted":
        assert not refused
        assert len(applied) == 1
        expiry = applied[0]
        assert (expiry.link_status, expiry.status, expiry.link_due_at) == (
            after.link_status,
            after.status,
            after.link_due_at,
        )
        [event] = outcome.events
        assert isinstance(event, LinkExpired)
        assert expiry.event.model_dump(exclude={"event_id"}) == event.model_dump(
            exclude={"event_id"}
        )
    else:
        assert not applied
        assert len(refused) == 1
        assert refused[0][1].code == outcome.code
