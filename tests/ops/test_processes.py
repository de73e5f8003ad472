"""The long-running commands as real processes: started, probed, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from messages.routing import Queue, command_bytes
from tests.integration.commands import configure_store
from tests.ops.support import http_get

ROOT = Path(__file__).resolve().parents[2]
PAYLINK = str(Path(sys.executable).with_name("paylink"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: Generous: a loaded CI machine boots a Dramatiq worker pool slowly.
BOOT_SECONDS = 120.0


def wait_for(check: Callable[[], bool], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + BOOT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            pytest.fail(f"timed out waiting for {what}; process output:\n{tail}")
        time.sleep(0.2)


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to the process alone, as Kubernetes stops a container; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@pytest.fixture
def start(database: str, vhost: str, tmp_path: Path) -> Iterator[Callable[..., Started]]:
    started: list[Started] = []
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "BROKER_URL": vhost,
        "PAYLINK_OUTBOX_DIR": str(tmp_path / "outbox"),
        "dramatiq_prom_db": str(tmp_path / "prometheus"),
    }

    def run(*argv: str) -> Started:
        log = tmp_path / f"process-{len(started)}.log"
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Started(process, log))
        return started[-1]

    yield run
    for each in started:
        if each.process.poll() is None:
            os.killpg(each.process.pid, signal.SIGKILL)
            each.process.wait()


def test_exporter_process_serves_metrics_until_sigterm(
    start: Callable[..., Started],
) -> None:
    port = free_port()
    exporter = start(sys.executable, "-m", "workers.cli", "exporter", "--port", str(port))
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, "the exporter", exporter.log)
    status, body = http_get(port, "/metrics")
    assert status == 200
    assert "paylink_outbox_backlog" in body
    assert 'paylink_exporter_up{source="database"} 1.0' in body
    assert "python_gc" not in body  # only the paylink_* metrics
    assert exporter.stop() == 0


def test_worker_process_runs_actors_and_serves_dramatiq_metrics(
    start: Callable[..., Started], vhost: str
) -> None:
    port = free_port()
    worker = start(
        PAYLINK, "worker", "-p", "1", "-t", "1", "-Q", Queue.STORE_CONFIG,
        "--metrics-port", str(port),
    )  # fmt: skip
    wait_for(lambda: http_get(port, "/metrics")[0] == 200, "Dramatiq's metrics", worker.log)
    connection = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        connection.channel().basic_publish(
            "", Queue.STORE_CONFIG, command_bytes(configure_store()),
            pika.BasicProperties(delivery_mode=2),
        )  # fmt: skip
    finally:
        connection.close()
    wait_for(
        lambda: (
            'dramatiq_messages_total{actor_name="configure_store"' in http_get(port, "/metrics")[1]
        ),
        "the worker to process a command and count it",
        worker.log,
    )
    assert worker.stop() == 0
    # Every process of the pool, Dramatiq's main process too, logs JSON lines.
    lines = [line for line in worker.log.read_text().splitlines() if line.strip()]
    assert lines
    assert all(line.startswith("{") for line in lines), lines


#: What each process says about itself on /metrics (docs/architecture.md).
OWN_METRICS = {
    "relay": (
        "paylink_relay_published_total",
        "paylink_relay_partitions_held 2.0",
        "paylink_relay_partitions 2.0",
        "paylink_relay_last_poll_timestamp_seconds",
        "paylink_relay_batch_size_bucket",
    ),
    "scheduler": (
        'paylink_scheduler_released_total{kind="link"}',
        'paylink_scheduler_released_total{kind="reservation"}',
        "paylink_scheduler_last_tick_timestamp_seconds",
    ),
}


@pytest.mark.parametrize("command", ["relay", "scheduler"])
def test_relay_and_scheduler_serve_health_and_their_own_metrics_until_sigterm(
    start: Callable[..., Started], command: str
) -> None:
    port = free_port()
    process = start(PAYLINK, command, "--health-port", str(port))
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, f"the {command}", process.log)
    assert http_get(port, "/healthz")[0] == 200
    status, body = http_get(port, "/metrics")
    assert status == 200
    for needle in OWN_METRICS[command]:
        assert needle in body, needle
    assert process.stop() == 0
