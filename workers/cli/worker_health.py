"""The health and metrics server of a `paylink worker` group, and its processes' heartbeats.

Dramatiq's own exposition server is a fork the first worker process announces once it
has booted; the main process starts forks when every worker booted or after
``--worker-fork-timeout``, whichever comes first, so after a slow boot it never started
and the metrics port stayed closed (and TCP probes on it meant nothing). paylink starts
this server instead (``workers.cli.worker_group_server``), as a fork given on the command
line (``--fork-function``): it
listens from the start, whatever the boot time, and serves

- ``/metrics``: Dramatiq's metrics of this group's processes (prometheus_client's
  multiprocess files in the group's own directory, ``workers.cli.worker``);
- ``/readyz``: 200 once every worker process of the group has booted and keeps beating;
- ``/healthz``: 200 while this server runs.

Each worker process beats (touches ``heartbeat/<pid>`` in the group's directory) every
``HEARTBEAT_SECONDS`` while its consumer and worker threads are alive. A process that
hangs or loses a thread stops beating, and ``/readyz`` fails ``STALE_AFTER`` seconds
later: Kubernetes probes it for startup, readiness and liveness, so a hung group is
restarted. Dramatiq's per-actor series of the group's actors exist from boot, at 0.
Dramatiq internals read here (``Worker.consumers``, ``Worker.workers``, the Prometheus
middleware's metrics, the exposition fork replaced) are checked by
``tests/ops/test_worker_health.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from dramatiq import Broker, Worker
from dramatiq.middleware import Middleware
from dramatiq.middleware.prometheus import Prometheus

from workers.cli.worker import GROUP_DIR_ENV

log = structlog.get_logger("paylink.worker.health")

#: How often a healthy worker process touches its heartbeat file.
HEARTBEAT_SECONDS = 5.0
#: A heartbeat this old means the process is hung (six beats missed).
STALE_AFTER = 30.0


def heartbeat_dir() -> Path:
    return Path(os.environ[GROUP_DIR_ENV]) / "heartbeat"


def fresh_heartbeats(directory: Path, now: float | None = None) -> int:
    """Worker processes of the group that beat within ``STALE_AFTER``."""
    now = time.time() if now is None else now
    try:
        beats = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    fresh = 0
    for beat in beats:
        try:
            fresh += now - beat.stat().st_mtime < STALE_AFTER
        except FileNotFoundError:  # its process stopped meanwhile
            continue
    return fresh


def threads_alive(worker: Worker) -> bool:
    """Every consumer and worker thread of a Dramatiq ``Worker`` is still running."""
    threads = [*worker.consumers.values(), *worker.workers]
    return bool(threads) and all(thread.is_alive() for thread in threads)


class Heartbeat(Middleware):
    """Touches this process's heartbeat file while its Dramatiq threads are alive."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / str(os.getpid())
        self._stop = threading.Event()

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        self.path = self.path.parent / str(os.getpid())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        threading.Thread(
            target=self._beat, args=(worker,), name="paylink-heartbeat", daemon=True
        ).start()

    def _beat(self, worker: Worker) -> None:
        while not self._stop.is_set():
            if threads_alive(worker):
                self.path.touch()
            self._stop.wait(HEARTBEAT_SECONDS)

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        self._stop.set()
        self.path.unlink(missing_ok=True)


#: Dramatiq's per-actor metrics (attributes of its Prometheus middleware once booted).
DRAMATIQ_SERIES = (
    "total_messages",
    "total_errored_messages",
    "total_retried_messages",
    "total_rejected_messages",
    "inprogress_messages",
    "message_durations",
)


class SeriesFromBoot(Middleware):
    """Dramatiq's per-actor series of this process's actors, at 0 from boot.

    Labelled series appear only at their first event otherwise, and an alert comparing
    errors with messages (PaylinkWorkerErrors) or a rate over a series that starts at
    its first error sees nothing, or too little, until then.
    """

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        metrics = next((m for m in broker.middleware if isinstance(m, Prometheus)), None)
        if metrics is None:
            return
        for actor_name in broker.get_declared_actors():
            queue = broker.get_actor(actor_name).queue_name
            if queue in worker.consumers:
                for series in DRAMATIQ_SERIES:
                    getattr(metrics, series).labels(queue, actor_name)


class _MetricsWithoutExpositionFork(Prometheus):
    """Dramatiq's metrics, served by :func:`serve` instead of Dramatiq's exposition fork."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        return []


def without_exposition_fork(broker: Broker) -> None:
    """Dramatiq's Prometheus middleware of ``broker`` announces no exposition server (a
    process announces it only once booted: too late after a slow boot, see above)."""
    for middleware in broker.middleware:
        if type(middleware) is Prometheus:
            middleware.__class__ = _MetricsWithoutExpositionFork
