"""`paylink run` / `make run`: the whole service on one machine, supervised.

Migrates the database, checks RabbitMQ, then starts and watches the worker pool
(every queue), the outbox relay, the expiry scheduler, the link page and the metrics
exporter as child processes. A child that dies is restarted (a worker group as a whole:
Dramatiq stops a group when one of its processes dies).

Ctrl-C and SIGTERM stop everything cleanly: each child runs in a session of its own,
so the terminal's SIGINT reaches only this supervisor, which sends each child exactly
one SIGTERM (with the terminal's SIGINT as well, Dramatiq's workers got two signals and
were killed mid-message: "Killing worker process").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import structlog

from messages.routing import ALL_QUEUES
from workers.cli.worker import WORKER_METRICS_PORT, worker_command
from workers.observability.logs import configure_logging
from workers.processes.demo import run_demo
from workers.settings import Settings, first_broker_url
from workers.storage.migrate import upgrade

log = structlog.get_logger("paylink.run")


class BrokerUnreachable(RuntimeError):
    pass


def check_broker(url: str, timeout: float = 5.0) -> None:
    params = pika.URLParameters(first_broker_url(url))
    params.socket_timeout = timeout
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:
        raise BrokerUnreachable(
            f"RabbitMQ is not reachable at {params.host}:{params.port} ({type(exc).__name__}). "
            "Start it (`rabbitmq-server -detached`) or set BROKER_URL."
        ) from None


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, start_new_session=True
        )
        log.info("started", process=self.name, pid=self.process.pid)


#: Health ports of relays after the first (which keeps the relay's 9300).
EXTRA_RELAY_PORTS = 9310


def relays(settings: Settings) -> list[Child]:
    """One relay per partition on PostgreSQL (``workers.processes.relay``); one on SQLite."""
    py = sys.executable
    if settings.relay_partitions == 1 or not settings.database_url.startswith("postgresql"):
        return [Child("relay", [py, "-m", "workers.cli", "relay"])]
    return [
        Child(
            f"relay-{i}",
            [py, "-m", "workers.cli", "relay", "--partition", str(i)]
            + ([] if i == 0 else ["--health-port", str(EXTRA_RELAY_PORTS + i)]),
        )
        for i in range(settings.relay_partitions)
    ]


def children(settings: Settings, *, exporter: bool = True, demo: bool = False) -> list[Child]:
    py = sys.executable
    worker_argv, worker_env = worker_command(
        settings.worker_processes, settings.worker_threads, ALL_QUEUES, WORKER_METRICS_PORT
    )
    if demo:  # the demo's timelines show link.delivered from the local outbox
        worker_env = {**worker_env, "PAYLINK_LOCAL_OUTBOX_REPORTS": "true"}
    procs = [
        Child("worker", worker_argv, worker_env),
        *relays(settings),
        Child(
            "scheduler",
            [
                py,
                "-m",
                "workers.cli",
                "scheduler",
            ],
        ),
    ]
    procs.append(Child("web", [py, "-m", "workers.cli", "web"]))
    if exporter:
        procs.append(Child("exporter", [py, "-m", "workers.cli", "exporter"]))
    return procs


def _demo_thread(settings: Settings, result: list[int], done: threading.Event) -> threading.Thread:
    def target() -> None:
        try:
            result.append(run_demo(settings))
        except Exception as exc:
            print(f"demo failed: {exc}", file=sys.stderr, flush=True)
            result.append(1)
        finally:
            done.set()

    return threading.Thread(target=target, name="demo", daemon=True)


def run(
    settings: Settings,
    *,
    exporter: bool = True,
    demo: bool = False,
    stop_after_demo: bool = False,
) -> int:
    configure_logging(settings)  # chosen here, inherited by every child
    check_broker(settings.broker_url)
    upgrade(settings.database_url)
    procs = children(settings, exporter=exporter, demo=demo)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for child in procs:
        child.start()
    print(
        f"paylink is running: {settings.worker_processes} worker processes x "
        f"{settings.worker_threads} threads on every queue, "
        f"{sum(c.name.startswith('relay') for c in procs)} relay(s), scheduler"
        + (", exporter on :9302/metrics" if exporter else "")
        + f". Database {settings.database_url.split('@')[-1]}. Ctrl-C stops.",
        flush=True,
    )
    demo_result: list[int] = []
    demo_done = threading.Event()
    if demo:
        _demo_thread(settings, demo_result, demo_done).start()
    while not stopping:
        time.sleep(0.5)
        if stop_after_demo and demo_done.is_set():
            break
        for child in procs:
            assert child.process is not None
            code = child.process.poll()
            if code is not None and not stopping:
                child.restarts += 1
                log.warning("child exited, restarting", process=child.name, code=code)
                time.sleep(min(child.restarts, 10))
                child.start()
    for child in procs:
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 90
    for child in procs:
        if child.process:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
    return demo_result[0] if demo_result else 0


def demo_standalone() -> int:
    """Run the scenario on a throwaway service: fresh SQLite file, 20 s link TTL."""
    var = Path("var")
    db = var / "demo.db"
    for leftover in var.glob("demo.db*"):
        leftover.unlink()
    os.environ.update(
        DATABASE_URL=f"sqlite:///{db}",
        PAYLINK_LINK_TTL_SECONDS="20",
        PAYLINK_OUTBOX_DIR=str(var / "demo-outbox"),
    )
    # Read after the environment above: the settings of the throwaway service.
    return run(Settings(), exporter=False, demo=True, stop_after_demo=True)
