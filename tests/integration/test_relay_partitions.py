"""Two relays, each publishing its partition of the outbox (``workers.processes.relay``)."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from messages import commands as c
from workers.devtools.commands import configure_store, create_order, merchant
from workers.devtools.harness import Harness
from workers.processes.relay import partition_clause
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


def _sent_orders(h: Harness) -> list[c.CreateOrder]:
    """A store and ORDERS orders, each link sent."""
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    orders = [create_order() for _ in range(ORDERS)]
    for cmd in orders:
        h.publish(cmd)
    h.wait_for(lambda: len(h.events_for(type_="link.sent")) == ORDERS, what="every link.sent")
    return orders


def _assert_once_and_in_order(h: Harness, orders: list[c.CreateOrder]) -> None:
    events = h.drain_events()
    ids = Counter(e["event_id"] for e in events)
    assert max(ids.values()) == 1, "an event was published twice"
    for cmd in orders:
        sequence = [e["type"] for e in events if e.get("order_id") == str(cmd.order_id)]
        assert sequence == ["order.created", "link.sent", "order.cancelled"]


def test_partitioned_relays_publish_everything_once_and_each_order_in_order(
    harness: Harness,
) -> None:
    h = harness
    h.start_worker(processes=1, threads=4)
    h.start_relay(partition=0)
    second = h.start_relay(partition=1)
    orders = _sent_orders(h)

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

    _assert_once_and_in_order(h, orders)


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


def _claimed(proc) -> int | None:  # type: ignore[no-untyped-def]
    found = re.search(r"relay partition claimed\W+partition\W+(\d+)", proc.log.read_text())
    return int(found.group(1)) if found else None


def test_relays_claim_free_partitions_and_a_standby_takes_over_a_dead_ones(
    harness: Harness,
) -> None:
    """Three relays in claim mode, two partitions: two publish, one stands by; SIGKILL
    one that publishes and the standby takes its partition; nothing lost, nothing twice,
    every order's events in order."""
    h = harness
    h.start_worker(processes=1, threads=4)
    relays = [h.start_relay(claim=True) for _ in range(3)]
    h.wait_for(
        lambda: sorted(p for p in map(_claimed, relays) if p is not None) == [0, 1],
        what="two relays holding partitions 0 and 1",
    )
    [standby] = [r for r in relays if _claimed(r) is None]
    victim = next(r for r in relays if _claimed(r) == 1)
    orders = _sent_orders(h)

    victim.kill()  # SIGKILL: its lock goes with its connection
    h.wait_for(lambda: _claimed(standby) == 1, what="the standby taking partition 1")
    for cmd in orders:
        h.publish(merchant(c.CancelOrder, cmd.order_id))
    h.wait_for(
        lambda: len(h.events_for(type_="order.cancelled")) == ORDERS, what="every cancellation"
    )

    _assert_once_and_in_order(h, orders)
