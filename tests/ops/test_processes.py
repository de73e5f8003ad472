"""The long-running commands as real processes: started, probed, stopped with SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pika
import pytest

from messages.routing import Queue, command_bytes
from tests.ops.support import Started, free_port, http_get, wait_for
from workers.devtools.commands import configure_store

PAYLINK = str(Path(sys.executable).with_name("paylink"))


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
    assert all(line.startswith("{") for line in lines), "\n".join(lines)


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
        'paylink_scheduler_pruned_total{table="processed_commands"}',
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
