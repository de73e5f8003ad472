"""What `paylink worker` execs: Dramatiq's own CLI, with paylink's logging, one clean
metrics directory per worker group, and the group's health server.

Dramatiq's main process would otherwise log in its own text format (``--skip-logging``
turns that off); configured here before it forks, every process of the pool writes
the same masked JSON lines.

Metrics: prometheus_client's multiprocess files live in a directory of the group's own
(``<dramatiq_prom_db>/group-<metrics port>``: two groups on one host cannot share a
port, so they never share files), emptied when the group starts, so no dead process of
an earlier run is counted. Four groups on one host once shared one directory and each
reported all four groups' counts.

One worker process that dies takes the group down: Dramatiq's main process stops the
others (they finish the messages they hold) and exits with the dead one's code, for a
supervisor to restart the whole group (``paylink run``, Kubernetes, compose, systemd).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import dramatiq.cli

from workers.observability.logs import configure_logging
from workers.settings import get_settings

#: The group's metrics and health port (docs/architecture.md).
WORKER_METRICS_PORT = 9191
#: Dramatiq's variables: where the group's metrics and heartbeats live, where its server
#: listens. Nothing here imports dramatiq.middleware.prometheus, which reads the first
#: when imported: main() sets it before.
GROUP_DIR_ENV = "dramatiq_prom_db"
PORT_ENV = "dramatiq_prom_port"
HOST_ENV = "dramatiq_prom_host"

#: Dramatiq's CLI entry point; the function is not annotated, it returns an exit code.
_dramatiq_main: Callable[[], int | None] = dramatiq.cli.main


def group_directory(port: int, base: str | None = None) -> Path:
    """The group's metrics and heartbeat directory, under ``dramatiq_prom_db``."""
    root = base or os.environ.get(GROUP_DIR_ENV) or f"{tempfile.gettempdir()}/dramatiq-prometheus"
    return Path(root) / f"group-{port}"


def worker_command(
    processes: int, threads: int, queues: Sequence[str], metrics_port: int
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a worker group (``paylink worker``, ``paylink run``)."""
    argv = [
        sys.executable,
        "-m",
        "workers.cli.worker",
        "workers.cli.worker_boot",
        "--skip-logging",
        "--fork-function",
        "workers.cli.worker_group_server:serve",
        "-p",
        str(processes),
        "-t",
        str(threads),
        "-Q",
        *queues,
    ]
    env = {
        "PAYLINK_WORKER_METRICS": "1",
        "PAYLINK_WORKER_PROCESSES": str(processes),
        PORT_ENV: str(metrics_port),
    }
    return argv, env


def _start_clean(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "heartbeat").mkdir(parents=True)


def main() -> int:
    port = int(os.environ.get(PORT_ENV, str(WORKER_METRICS_PORT)))
    directory = group_directory(port)
    _start_clean(directory)
    # Read by Dramatiq's Prometheus middleware when first imported (as the worker
    # processes and the group's server import it, never before this).
    os.environ[GROUP_DIR_ENV] = str(directory)
    configure_logging(get_settings())
    return int(_dramatiq_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
