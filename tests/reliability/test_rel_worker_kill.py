"""SIGKILL the worker pool again and again under a full lifecycle load.

Orders are created, sent, opened, completed, captured and part-refunded (5 commands
from upstream plus paylink's own send-link each), while the worker pool (2 processes x
8 threads) is SIGKILLed every 3 seconds, four times, and started afresh by the
supervisor.

Size: the brief's 2 000 lifecycles. Measured on this 2-core machine: 63 s in all when
it was otherwise idle (after the relay got partitions and NOTIFY wake-ups), 247 s
before them with other test runs sharing it; the run's timeout allows for the latter.
``PAYLINK_REL_ORDERS`` sets another count (never below 500).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.reliability.checks import Report
from tests.reliability.conftest import Rig
from tests.reliability.lifecycle import Lifecycle, verify_lifecycle_run

pytestmark = pytest.mark.reliability

ORDERS = max(500, int(os.environ.get("PAYLINK_REL_ORDERS", "2000")))
KILL_EVERY, KILLS = 3.0, 4


def test_worker_sigkill_during_lifecycle_load(rig: Rig, record_property) -> None:  # type: ignore[no-untyped-def]
    report = Report("worker_sigkill", record_property)
    rig.start_stack(processes=2, threads=8)
    life = Lifecycle(rig.pub, rig.events, rig.outbox)
    life.configure_store()
    started = time.monotonic()
    kills = 0

    def maybe_kill() -> None:
        nonlocal kills
        due = time.monotonic() - started >= KILL_EVERY * (kills + 1)
        if kills < KILLS and due and life.finished < len(life.runs):
            rig.sup.kill("worker-0")
            kills += 1

    life.create(ORDERS, tick=maybe_kill)
    life.run(timeout=420, tick=maybe_kill)
    report["load_s"] = round(time.monotonic() - started, 1)
    assert kills >= 3, f"the load ended before the third kill ({kills} kills)"
    assert [k for k, _ in rig.sup.restarts] == ["worker-0"] * kills, rig.sup.restarts
    verify_lifecycle_run(rig, life, report, kills=kills)
