"""The long-running commands as real processes: started, probed, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

from messages.routing import Queue, command_bytes
from tests.integration.commands import configure_store
from tests.ops.support import declare_queues, http_get, skip_unless_idle
from tests.services import RABBITMQ_URL, require_rabbitmq

ROOT = Path(__file__).resolve().parents[2]
PAYLINK = str(Path(sys.executable).with_name("paylink"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def start(database: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    require_rabbitmq()
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "BROKER_URL": RABBITMQ_URL,
        "PAYLINK_OUTBOX_DIR": str(tmp_path / "outbox"),
        "dramatiq_prom_db": str(tmp_path / "prometheus"),
    }

    def run(*argv: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"process-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM to the process alone, as Kubernetes stops a container; its exit code."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def test_exporter_process_serves_metrics_until_sigterm(
    start: Callable[..., subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    process = start(sys.executable, "-m", "workers.cli", "exporter", "--port", str(port))
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, "the exporter to be ready")
    status, body = http_get(port, "/metrics")
    assert status == 200
    assert "paylink_outbox_backlog" in body
    assert "paylink_queue_messages" in body
    assert "python_gc" not in body  # only the paylink_* metrics
    assert stop(process) == 0


def test_worker_process_runs_actors_and_serves_dramatiq_metrics(
    start: Callable[..., subprocess.Popen[bytes]],
) -> None:
    declare_queues(Queue.STORE_CONFIG)
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        skip_unless_idle(connection.channel(), Queue.STORE_CONFIG)
    finally:
        connection.close()
    port = free_port()
    process = start(
        PAYLINK, "worker", "-p", "1", "-t", "1", "-Q", Queue.STORE_CONFIG,
        "--metrics-port", str(port),
    )  # fmt: skip
    wait_for(lambda: http_get(port, "/metrics")[0] == 200, "Dramatiq's metrics server")
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
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
        timeout=60,
    )
    assert stop(process) == 0
