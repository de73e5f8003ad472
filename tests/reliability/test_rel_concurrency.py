"""Interleaved partial captures and refunds on many orders, from two worker processes."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import pytest

from messages import commands as c
from tests.reliability.checks import (
    Report,
    check_ledger,
    check_outcomes,
    check_recorded_events_published,
    dead_letters,
    processed,
    wait_settled,
)
from tests.reliability.conftest import Rig
from tests.reliability.lifecycle import Lifecycle
from workers.devtools.commands import merchant
from workers.storage.engine import make_engine

pytestmark = pytest.mark.reliability

ORDERS = 50
PER_ORDER = 8  # captures and as many refunds, interleaved
CAPTURE, REFUND = 15_000, 6_000
ALLOWED_REJECTIONS = {
    "CAPTURE_EXCEEDS_REMAINING",
    "REFUND_EXCEEDS_CAPTURED",
    "ACTION_NOT_ALLOWED_IN_STATUS",
}


def test_concurrent_captures_and_refunds_from_two_worker_processes(
    rig: Rig, record_property
) -> None:  # type: ignore[no-untyped-def]
    report = Report("concurrent_captures_refunds", record_property)
    rig.start_stack(workers=2, processes=1, threads=8)
    engine = make_engine(rig.h.database_url)
    life = Lifecycle(rig.pub, rig.events, rig.outbox, until="order.completed")
    life.configure_store()
    life.create(ORDERS)
    life.run(timeout=90)

    burst: dict[str, tuple[str, uuid.UUID, int]] = {}
    for _ in range(PER_ORDER):
        for order_id in life.runs:
            oid = uuid.UUID(order_id)
            for cls, amount in ((c.CapturePayment, CAPTURE), (c.RefundPayment, REFUND)):
                cmd = merchant(cls, oid, amount=amount)
                burst[str(cmd.command_id)] = (cls.__name__, oid, amount)
                rig.pub.publish(cmd)
    rig.events.wait_for(
        lambda: all(rig.events.for_command(cid) for cid in burst), 120, "an outcome per command"
    )
    wait_settled(engine, rig.pub, rig.events, 60)

    states = check_ledger(engine)
    records = processed(engine)
    outcomes = check_outcomes(records, rig.events, burst)
    check_recorded_events_published(records, rig.events)
    codes = {k.split(":", 1)[1] for k in outcomes if k.startswith("rejected:")}
    assert codes <= ALLOWED_REJECTIONS, outcomes

    accepted: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for cid, (kind, oid, amount) in burst.items():
        if records[cid].outcome == "accepted":
            accepted[oid][kind] += 1
            accepted[oid][f"{kind}:amount"] += amount
    for order_id in life.runs:
        s, a = states[uuid.UUID(order_id)], accepted[uuid.UUID(order_id)]
        assert s.captured <= s.authorized, s
        assert s.refunded <= s.captured, s
        assert (s.captures, s.captured) == (a["CapturePayment"], a["CapturePayment:amount"]), s
        assert (s.refunds, s.refunded) == (a["RefundPayment"], a["RefundPayment:amount"]), s
    assert dead_letters(rig.pub) == {}
    # both worker processes took part
    served = [
        p.log.read_text(errors="replace").count("command processed")
        for p in rig.h.procs
        if p.name == "worker"
    ]
    assert all(served), served
    assert rig.sup.restarts == []

    report["orders"] = ORDERS
    report["commands"] = len(burst)
    report["accepted"] = outcomes["accepted"]
    report["rejections"] = sum(n for k, n in outcomes.items() if k.startswith("rejected:"))
    report["captured_total"] = sum(s.captured for s in states.values())
    report["refunded_total"] = sum(s.refunded for s in states.values())
    report["per_worker_processed"] = served
    report["kills"] = 0
    report["restarts"] = len(rig.sup.restarts)
    report.emit()
