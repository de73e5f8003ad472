"""The server of a worker group: one Dramatiq fork serving the group's metrics and readiness.

Its own module, imported only in that fork (``paylink worker`` passes
``workers.cli.worker_group_server:serve``): prometheus_client picks its multiprocess
value class from ``PROMETHEUS_MULTIPROC_DIR`` when first imported, which the fork has
set by then, so its imports can stand at the top (tests/ops/test_worker_health.py
fails if a worker process imports prometheus_client before Dramatiq does).
"""

from __future__ import annotations

import os
import threading

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from workers.cli.worker import GROUP_DIR_ENV, HOST_ENV, PORT_ENV
from workers.cli.worker_health import fresh_heartbeats, heartbeat_dir
from workers.observability.health import start_health_server
from workers.settings import get_settings

log = structlog.get_logger("paylink.worker.health")


class _GroupMetrics:
    """The group's multiprocess files, read at each scrape. A file a process is still
    creating can fail the read: that scrape says so in the log and serves nothing,
    rather than a traceback on stderr."""

    def __init__(self, files: MultiProcessCollector) -> None:
        self.files = files

    def collect(self) -> list[Metric]:
        try:
            return list(self.files.collect())
        except Exception as exc:
            log.warning("worker metrics unreadable this scrape", error=type(exc).__name__)
            return []


def serve() -> int:
    """The group's server (a Dramatiq fork: runs until the group stops)."""
    processes = get_settings().worker_processes
    registry = CollectorRegistry(auto_describe=False)
    files = MultiProcessCollector(None, path=os.environ[GROUP_DIR_ENV])
    registry.register(_GroupMetrics(files))
    beats = heartbeat_dir()
    start_health_server(
        int(os.environ.get(PORT_ENV, "9191")),
        lambda: fresh_heartbeats(beats) >= processes,
        registry=registry,
        host=os.environ.get(HOST_ENV, "0.0.0.0"),  # noqa: S104 - probes come from outside
    )
    threading.Event().wait()  # Dramatiq stops forks with SIGTERM (SystemExit)
    return 0
