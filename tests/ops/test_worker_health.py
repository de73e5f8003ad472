"""A worker group's metrics and health: served whatever the boot time, from a clean
directory of its own, and failing when a process hangs; stopped with one signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus, _run_exposition_server

from messages.routing import Queue
from tests.ops.support import Started, free_port, http_get, wait_for
from workers.cli import worker_health as health
from workers.cli.worker import _start_clean, group_directory, worker_command
from workers.processes.supervisor import Child

# ---- what paylink relies on in Dramatiq (fails when the library changes) -----------


def test_dramatiq_announces_its_exposition_server_as_a_fork_that_paylink_replaces() -> None:
    assert Prometheus().forks == [_run_exposition_server]


def test_the_group_broker_announces_no_exposition_fork() -> None:
    broker = StubBroker(middleware=[Prometheus()])

    health.without_exposition_fork(broker)

    assert [m.forks for m in broker.middleware if isinstance(m, Prometheus)] == [[]]


def test_a_dramatiq_worker_exposes_its_consumer_and_worker_threads() -> None:
    broker = StubBroker()
    dramatiq.actor(lambda: None, actor_name="noop", queue_name="q", broker=broker)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        assert health.threads_alive(worker)
        assert len(worker.workers) == 2
        assert set(worker.consumers) >= {"q"}
    finally:
        worker.stop()
    assert not health.threads_alive(worker)


# ---- heartbeats ------------------------------------------------------------------


def test_only_recent_heartbeats_count(tmp_path: Path) -> None:
    now = time.time()
    for pid, age in (
        ("101", 1.0),
        ("102", health.STALE_AFTER - 1),
        ("103", health.STALE_AFTER + 1),
    ):
        (tmp_path / pid).touch()
        os.utime(tmp_path / pid, (now - age, now - age))

    assert health.fresh_heartbeats(tmp_path, now) == 2
    assert health.fresh_heartbeats(tmp_path / "missing", now) == 0


def test_a_process_with_a_dead_thread_is_not_alive() -> None:
    alive = SimpleNamespace(is_alive=lambda: True)
    dead = SimpleNamespace(is_alive=lambda: False)

    assert health.threads_alive(SimpleNamespace(consumers={"q": alive}, workers=[alive]))
    assert not health.threads_alive(SimpleNamespace(consumers={"q": alive}, workers=[dead]))
    assert not health.threads_alive(SimpleNamespace(consumers={}, workers=[]))


# ---- one clean directory per group ----------------------------------------------------


def test_each_group_has_its_own_directory_by_metrics_port(tmp_path: Path) -> None:
    assert group_directory(9191, str(tmp_path)) != group_directory(9192, str(tmp_path))
    assert group_directory(9191, str(tmp_path)).parent == tmp_path


def test_a_group_starts_with_an_empty_directory(tmp_path: Path) -> None:
    # Given files an earlier run of this group left, and another group's
    mine, other = group_directory(9191, str(tmp_path)), group_directory(9192, str(tmp_path))
    for directory in (mine, other):
        directory.mkdir(parents=True)
        (directory / "counter_4242.db").write_bytes(b"stale")
    # When this group starts
    _start_clean(mine)
    # Then its directory holds only the (empty) heartbeat directory; the other is untouched
    assert [p.name for p in mine.iterdir()] == ["heartbeat"]
    assert (other / "counter_4242.db").exists()


# ---- the group as processes -----------------------------------------------------------


@pytest.fixture
def group(
    start: Callable[..., Started], tmp_path: Path
) -> Callable[..., tuple[Started, int, Path]]:
    """Start a worker group the way `paylink worker` does, plus Dramatiq options."""

    def run(
        *dramatiq_options: str, processes: int = 2, port: int | None = None
    ) -> tuple[Started, int, Path]:
        port = port or free_port()
        argv, extra = worker_command(processes, 2, [Queue.STORE_CONFIG], port)
        started = start(*argv, *dramatiq_options, env=extra)
        return started, port, group_directory(port, str(tmp_path / "prometheus"))

    return run


def _ready(port: int) -> bool:
    return http_get(port, "/readyz")[0] == 200


def test_metrics_are_served_even_when_dramatiq_stops_waiting_for_the_boot(
    group: Callable[..., tuple[Started, int, Path]],
) -> None:
    # Given a group whose main process waits only 10 ms for its workers to boot (their
    # boot takes seconds: Dramatiq's own exposition fork was never started then)
    worker, port, _ = group("--worker-fork-timeout", "10")
    # When it has booted
    wait_for(lambda: _ready(port), "every worker process booted", worker.log)
    # Then its metrics are served on its port
    assert http_get(port, "/metrics")[0] == 200
    assert http_get(port, "/healthz")[0] == 200
    assert worker.stop() == 0


def test_every_actor_of_the_group_has_its_series_before_its_first_message(
    group: Callable[..., tuple[Started, int, Path]],
) -> None:
    # Given a booted group on paylink.store-config that has processed nothing
    worker, port, _ = group(processes=1)
    wait_for(lambda: _ready(port), "the group", worker.log)
    # When Prometheus scrapes it
    body = http_get(port, "/metrics")[1]
    # Then each of Dramatiq's per-actor series of its actor is there, at 0
    labels = '{actor_name="configure_store",queue_name="paylink.store-config"}'
    for name in (
        "dramatiq_messages_total",
        "dramatiq_message_errors_total",
        "dramatiq_message_retries_total",
        "dramatiq_message_rejects_total",
        "dramatiq_messages_inprogress",
        "dramatiq_message_duration_milliseconds_count",
    ):
        assert f"{name}{labels} 0.0" in body, name
    assert "create_order" not in body  # not an actor of this group
    assert worker.stop() == 0


def test_stale_metrics_files_of_an_earlier_run_are_not_reported(
    group: Callable[..., tuple[Started, int, Path]], tmp_path: Path
) -> None:
    # Given a counter an earlier, dead run of this group left in its directory
    port = free_port()
    directory = group_directory(port, str(tmp_path / "prometheus"))
    directory.mkdir(parents=True)
    code = (
        "from prometheus_client import Counter; "
        "Counter('dramatiq_messages', 'x', ['queue_name', 'actor_name'])"
        ".labels('paylink.store-config', 'configure_store').inc(4242)"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        check=True,
    )
    assert list(directory.glob("counter_*.db"))
    # When the group starts again on that port
    worker, _, _ = group(processes=1, port=port)
    wait_for(lambda: _ready(port), "the group", worker.log)
    # Then the dead run's count is gone
    assert "4242" not in http_get(port, "/metrics")[1]
    assert worker.stop() == 0


def test_a_hung_worker_process_makes_the_group_unready_until_it_beats_again(
    group: Callable[..., tuple[Started, int, Path]],
) -> None:
    # Given a booted group of two processes
    worker, port, directory = group(processes=2)
    wait_for(lambda: _ready(port), "every worker process booted", worker.log)
    beats = sorted((directory / "heartbeat").iterdir())
    assert len(beats) == 2
    hung = int(beats[0].name)
    # When one process hangs (stopped) and its last beat is older than STALE_AFTER
    os.kill(hung, signal.SIGSTOP)
    try:
        old = time.time() - health.STALE_AFTER - 1
        os.utime(beats[0], (old, old))
        # Then the group is not ready (and Kubernetes' liveness probe fails on it)
        assert http_get(port, "/readyz")[0] == 503
        assert http_get(port, "/healthz")[0] == 200
    finally:
        os.kill(hung, signal.SIGCONT)
    # and once it runs again, it beats and the group is ready again
    wait_for(lambda: _ready(port), "the process beating again", worker.log)
    assert worker.stop() == 0


def test_one_sigterm_stops_the_group_cleanly(
    group: Callable[..., tuple[Started, int, Path]],
) -> None:
    worker, port, _ = group(processes=2)
    wait_for(lambda: _ready(port), "every worker process booted", worker.log)

    assert worker.stop() == 0

    log = worker.log.read_text()
    assert "Killing worker process" not in log
    assert '"level": "error"' not in log
    assert '"level": "critical"' not in log


def test_the_supervisor_runs_each_child_in_a_session_of_its_own() -> None:
    """So the terminal's Ctrl-C reaches only `paylink run`, which sends one SIGTERM;
    a worker group that also got SIGINT was killed mid-message."""
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    child.start()
    assert child.process is not None
    try:
        assert os.getsid(child.process.pid) == child.process.pid
        assert os.getsid(child.process.pid) != os.getsid(0)
    finally:
        child.process.kill()
        child.process.wait()
