"""The broker module `paylink worker` gives Dramatiq: the actors, each process's
heartbeat, and no exposition fork of Dramatiq's own.

Dramatiq imports it in every worker process of the group (``workers.cli.worker``). The
heartbeat tells the group's server (``workers.cli.worker_health``) that the process
booted and is not hung; that server replaces Dramatiq's exposition fork; Dramatiq's
per-actor series exist from boot.
"""

from __future__ import annotations

from workers.cli.worker_health import (
    Heartbeat,
    SeriesFromBoot,
    heartbeat_dir,
    without_exposition_fork,
)
from workers.runtime.actors import broker

without_exposition_fork(broker)
broker.add_middleware(SeriesFromBoot())
broker.add_middleware(Heartbeat(heartbeat_dir()))

__all__ = ["broker"]
