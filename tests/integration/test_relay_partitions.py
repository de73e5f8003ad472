"""Two relays, each publishing its partition of the outbox (``workers.relay``)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from messages import commands as c
from tests.harness import Harness
from tests.integration.commands import configure_store, create_order, merchant
from workers.relay import partition_clause
from workers.storage import tables as t

pytestmark = pytest.mark.integration

ORDERS = 30


def _partition_sizes(h: Harness) -> list[int]:
    with h.engine.connect() as conn:
        return [
            conn.execute(
                select(func.count()).select_from(t.outbox).where(partition_clause(i, 2))
            ).scalar_one()
            for i in range(2)
        ]


def test_partitioned_relays_publish_everything_once_and_each_order_in_order(
    harness: Harness,
) -> None:
    h = harness
    h.start_worker(processes=1, threads=4)
    h.start_relay(partition=0)
    second = h.start_relay(partition=1)
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    orders = [create_order() for _ in range(ORDERS)]
    for cmd in orders:
        h.publish(cmd)
    h.wait_for(lambda: len(h.events_for(type_="link.sent")) == ORDERS, what="every link.sent")

    sizes = _partition_sizes(h)
    with h.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    assert sum(sizes) == total  # every row in exactly one partition
    assert min(sizes) > 0  # both relays had work (30 orders: all in one is 2 in 10^9)

    # One relay down: its orders' events wait in the outbox, the other's flow on.
    second.kill()
    for cmd in orders:
        h.publish(merchant(c.CancelOrder, cmd.order_id))
    h.wait_for(
        lambda: 0 < len(h.events_for(type_="order.cancelled")) < ORDERS,
        what="the running relay's cancellations",
    )
    h.start_relay(partition=1)
    h.wait_for(
        lambda: len(h.events_for(type_="order.cancelled")) == ORDERS, what="every cancellation"
    )

    events = h.drain_events()
    ids = Counter(e["event_id"] for e in events)
    assert max(ids.values()) == 1, "an event was published twice"
    for cmd in orders:
        sequence = [e["type"] for e in events if e.get("order_id") == str(cmd.order_id)]
        assert sequence == ["order.created", "link.sent", "order.cancelled"]


def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(harness_factory) -> None:  # type: ignore[no-untyped-def]
    """With a 60 s poll, only the outbox trigger's NOTIFY can publish within seconds."""
    h = harness_factory(PAYLINK_RELAY_POLL_SECONDS="60")
    h.start_worker(processes=1, threads=2)
    h.start_relay()
    h.wait_for(
        lambda: "relay connected" in h.logs(), what="the relay connected (and past its first poll)"
    )
    time.sleep(1)  # the relay is now in its 60 s wait
    store = configure_store()
    started = time.monotonic()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id, timeout=15)
    cmd = create_order()
    h.publish(cmd)
    h.wait_event("link.sent", order_id=cmd.order_id, timeout=15)  # two more wake-ups
    assert time.monotonic() - started < 30
