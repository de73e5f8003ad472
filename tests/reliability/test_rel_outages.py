"""RabbitMQ and PostgreSQL restarted in the middle of a lifecycle load.

Workers, relay and scheduler must recover by themselves; a process that exits instead
is restarted by the supervisor (as systemd or Kubernetes would) and reported. The
upstream publisher reconnects and re-publishes (command ids make that harmless).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.checks import Report
from tests.reliability.conftest import Rig
from tests.reliability.lifecycle import lifecycle_with_outage, verify_lifecycle_run

pytestmark = pytest.mark.reliability

ORDERS = int(os.environ.get("PAYLINK_REL_OUTAGE_ORDERS", "300"))
OUTAGE_AFTER = 4.0  # seconds into the load
BROKER_DOWN = 3.0


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def _start_app() -> None:
    for attempt in range(3):
        try:
            _run(["rabbitmqctl", "start_app"])
            return
        except subprocess.SubprocessError:
            if attempt == 2:
                raise
            time.sleep(2)


def _only_workers_restarted(rig: Rig) -> None:
    """The relay and the scheduler recover by themselves; a worker may be restarted."""
    assert {key for key, _ in rig.sup.restarts} <= {"worker-0"}, rig.sup.restarts


def _postgres_cluster() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return versions[-1]


def _wait_postgres(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError("PostgreSQL did not come back")
        time.sleep(0.2)


def test_rabbitmq_restart_during_load(rig: Rig, record_property) -> None:  # type: ignore[no-untyped-def]
    report = Report("rabbitmq_restart", record_property)

    def restart_broker() -> None:
        try:
            _run(["rabbitmqctl", "stop_app"])
            time.sleep(BROKER_DOWN)
        finally:
            _start_app()
        report["broker_down_s"] = BROKER_DOWN

    life = lifecycle_with_outage(
        rig, report, orders=ORDERS, outage=restart_broker, after=OUTAGE_AFTER
    )
    report["collector_reconnects"] = rig.events.reconnects
    verify_lifecycle_run(rig, life, report, kills=0)
    _only_workers_restarted(rig)


def test_postgres_restart_during_load(rig: Rig, record_property) -> None:  # type: ignore[no-untyped-def]
    report = Report("postgres_restart", record_property)
    cluster = _postgres_cluster()

    def restart_database() -> None:
        try:
            _run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"])
        finally:
            _wait_postgres()

    life = lifecycle_with_outage(
        rig, report, orders=ORDERS, outage=restart_database, after=OUTAGE_AFTER
    )
    verify_lifecycle_run(rig, life, report, kills=0)
    _only_workers_restarted(rig)
