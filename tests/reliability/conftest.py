"""Fixtures of the fault-injection suite: every scenario on its own vhost and database.

The ``rig`` is a whole paylink (workers, relay, scheduler as subprocesses, watched by a
supervisor that restarts whatever exits), an upstream publisher that reconnects, and a
collector of every event published. Each scenario loads it, injects its fault, and
then checks the database and the event stream with ``tests.reliability.checks``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests.services import require_postgres, require_rabbitmq
from workers.devtools.harness import (
    EventCollector,
    Harness,
    Publisher,
    Supervisor,
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
)
from workers.runtime.broker import declare_command_queues


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass
class Rig:
    h: Harness
    events: EventCollector
    pub: Publisher
    sup: Supervisor

    @property
    def outbox(self) -> Path:
        return self.h.workdir / "outbox"

    def start_stack(self, *, workers: int = 1, processes: int = 2, threads: int = 8) -> None:
        """Worker pools (each watched as ``worker-<i>``), one relay, one scheduler."""
        for i in range(workers):
            self.sup.watch(f"worker-{i}", self.h.start_worker(processes=processes, threads=threads))
        self.sup.watch("relay", self.h.start_relay())
        self.sup.watch("scheduler", self.h.start_scheduler())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    require_rabbitmq()
    require_postgres()
    try:
        vhost = create_vhost("paylink-rel")
    except (OSError, subprocess.CalledProcessError) as exc:
        message = f"rabbitmqctl cannot create a vhost ({exc}); the reliability suite needs it"
        if _ci():
            pytest.fail(message)
        pytest.skip(message)
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        declare_command_queues(conn.channel(), quorum=False)
    h = Harness(create_database("paylink_rel"), tmp_path, broker_url=vhost)
    events = EventCollector(vhost).start()
    pub = Publisher(vhost)
    sup = Supervisor(h).start()
    try:
        yield Rig(h, events, pub, sup)
    finally:
        sup.stop()
        for proc in h.procs:  # nothing to drain gracefully after the checks
            proc.kill()
        events.stop()
        pub.close()
        h.close()
        drop_database(h.database_url)
        delete_vhost(vhost)
