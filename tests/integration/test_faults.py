"""Faults that must not lose or double anything: concurrency, kills, expiry races."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from messages import commands as c
from workers.devtools.commands import (
    ORDER_AMOUNT,
    completed,
    configure_store,
    create_order,
    merchant,
)
from workers.devtools.harness import Harness, token_from_outbox

pytestmark = pytest.mark.integration


def _ready_order(h: Harness, **kw) -> tuple[uuid.UUID, str]:  # type: ignore[no-untyped-def]
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    cmd = create_order(**kw)
    h.publish(cmd)
    sent = h.wait_event("link.sent", order_id=cmd.order_id)
    return cmd.order_id, token_from_outbox(h.workdir / "outbox", sent["link_id"])


def test_concurrent_captures_from_two_worker_processes_never_exceed_authorization(
    harness: Harness,
) -> None:
    h = harness
    h.start_worker(processes=1, threads=8)
    h.start_worker(processes=1, threads=8)
    h.start_relay()
    order_id, token = _ready_order(h)
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=order_id)

    captures = [merchant(c.CapturePayment, order_id, amount=5_000) for _ in range(30)]
    for cmd in captures:
        h.publish(cmd)
    h.wait_for(
        lambda: all(h.events_for(cmd.command_id) for cmd in captures),
        timeout=60,
        what="30 outcomes",
    )
    outcomes = [h.events_for(cmd.command_id)[0] for cmd in captures]
    accepted = [e for e in outcomes if e["type"] == "payment.captured"]
    rejected = [e for e in outcomes if e["type"] == "order.rejected"]
    assert len(accepted) == ORDER_AMOUNT // 5_000
    # once fully captured, capture is no longer an action of the status
    assert {e["code"] for e in rejected} <= {
        "CAPTURE_EXCEEDS_REMAINING",
        "ACTION_NOT_ALLOWED_IN_STATUS",
    }
    assert len(rejected) == len(captures) - len(accepted)
    ledger = [e for e in h.ledger(order_id) if e.kind == "capture"]
    assert sum(e.amount for e in ledger) == ORDER_AMOUNT
    assert h.order_row(order_id).status == "CAPTURED"


def test_worker_killed_after_commit_before_ack_changes_state_once_and_event_arrives(
    harness: Harness,
) -> None:
    h = harness
    marker = h.workdir / "kill-once"
    h.env_overrides.update(
        PAYLINK_TEST_KILL_MARKER=str(marker), PAYLINK_TEST_KILL_ACTOR="capture_payment"
    )
    worker = h.start_worker(module="tests.integration.crashy_worker")
    h.start_relay()
    order_id, token = _ready_order(h)
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=order_id)

    marker.touch()
    capture = merchant(c.CapturePayment, order_id, amount=7_000)
    h.publish(capture)
    h.wait_for(lambda: not marker.exists(), what="the kill after commit")
    worker.stop()  # the pool lost a process: stop what is left, start a fresh worker
    h.start_worker()

    event = h.wait_event("payment.captured", command_id=capture.command_id)
    assert event["amount"] == 7_000
    time.sleep(1)  # let the redelivery be processed and its replay relayed
    captures = [e for e in h.ledger(order_id) if e.kind == "capture"]
    assert [e.amount for e in captures] == [7_000]
    ids = {e["event_id"] for e in h.events_for(capture.command_id)}
    assert ids == {event["event_id"]}  # any re-publication carries the same event id


def test_committed_events_are_published_once_the_relay_comes_back(harness: Harness) -> None:
    h = harness
    h.start_worker()
    relay = h.start_relay()
    order_id, token = _ready_order(h)
    relay.kill()  # SIGKILL: nothing is published from now on
    h.publish(completed(token))
    h.wait_for(lambda: h.order_row(order_id).link_status == "COMPLETED", what="checkout committed")
    assert not h.events_for(type_="order.completed", order_id=order_id)
    h.start_relay()
    h.wait_event("order.completed", order_id=order_id)


def test_link_expires_after_its_ttl_and_one_completed_just_before_stays_completed(
    harness_factory,
) -> None:  # type: ignore[no-untyped-def]
    h: Harness = harness_factory(PAYLINK_LINK_TTL_SECONDS="6")
    h.start_all()
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    lapsing, saved = create_order(), create_order()
    h.publish(lapsing)
    h.publish(saved)
    sent = h.wait_event("link.sent", order_id=saved.order_id)
    token = token_from_outbox(h.workdir / "outbox", sent["link_id"])
    created = h.order_row(saved.order_id).created_at
    h.publish(completed(token))
    h.wait_event("order.completed", order_id=saved.order_id)
    # the customer made it before the deadline
    assert h.order_row(saved.order_id).completed_at < created + timedelta(seconds=6)

    expired = h.wait_event("link.expired", order_id=lapsing.order_id, timeout=30)
    assert expired["link_id"]
    row = h.order_row(lapsing.order_id)
    assert row.link_status == "EXPIRED"
    assert row.link_due_at is None
    # lateness: expired within a few seconds of the deadline
    lateness = (row.updated_at - row.link_expires_at).total_seconds()
    assert 0 <= lateness < 5, lateness

    time.sleep(2)
    assert h.order_row(saved.order_id).status == "AUTHORIZED"
    assert not h.events_for(type_="link.expired", order_id=saved.order_id)
