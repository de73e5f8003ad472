"""A paylink (or a floor) on the real services, built from the test harness's pieces.

``workers.devtools.harness`` gives the scratch database, the queue purge and the way processes
are started (subprocesses in their own session, logs in a work directory). The bench
runs them with the production defaults of ``workers.settings`` (relay and scheduler
poll intervals, batch sizes, retries), not the tests' shortened ones, and counts
events without consuming them: a queue bound to ``paylink.events`` for one routing
key, whose depth is the number of such events published.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import create_engine, text

from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE
from workers.devtools.harness import Harness, Proc, delete_queues, purge_queues
from workers.devtools.services import rabbitmq_url


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc (KiB)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (and their reaped children), seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:13]) / tick
    return total


def _comm(pid: int) -> str:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def service_cpu_seconds(comm: str) -> float:
    """CPU seconds of every process named ``comm`` (e.g. ``postgres``, ``beam.smp``),
    with what their exited children used (PostgreSQL backends that have ended)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _comm(int(entry.name)) != comm:
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick
    return total


def system_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


@dataclass
class Memory:
    """RSS of a process tree: each process and the total (KiB)."""

    per_process: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.per_process.values())

    @property
    def largest(self) -> int:
        return max(self.per_process.values(), default=0)


def memory_of(proc: Proc, *, workers_only: bool = False) -> Memory:
    pids = tree(proc.popen.pid)
    if workers_only:
        # The Dramatiq CLI: a supervisor process (plus its fork watcher) and the worker
        # processes; the workers are the supervisor's direct children that hold threads.
        pids = [p for p in children(proc.popen.pid) if _threads(p) > 1] or pids
    return Memory({p: rss_kib(p) for p in pids})


def _threads(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class BenchStack(Harness):
    """Harness without the catch-all events queue, on production settings."""

    def __post_init__(self) -> None:
        self.engine = create_engine(self.database_url, pool_size=4)
        # No heartbeats: this connection idles while other phases run (a minute or more).
        params = pika.URLParameters(rabbitmq_url())
        params.heartbeat = 0
        self._conn = pika.BlockingConnection(params)
        self._ch = self._conn.channel()
        self._ch.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        self.events = []
        self.counters: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINK_")}
        return {
            **keep,
            "DATABASE_URL": self.database_url,
            "BROKER_URL": rabbitmq_url(),
            "PAYLINK_OUTBOX_DIR": str(self.workdir / "outbox"),
            "PAYLINK_LOG_FORMAT": "json",
            "BENCH_ACK_DIR": str(self.workdir / "acks"),
            "dramatiq_prom_db": str(self.workdir / "prom"),
            **self.env_overrides,
        }

    # ---- counting events without consuming them ---------------------------------

    def count_events(self, routing_key: str) -> None:
        name = f"bench.count.{routing_key}.{uuid.uuid4().hex[:6]}"
        self._ch.queue_declare(name, exclusive=True)
        # Routing keys are <store>.<event type>: every store's events of this type.
        self._ch.queue_bind(name, EVENTS_EXCHANGE, f"*.{routing_key}")
        self.counters[routing_key] = name

    def event_count(self, routing_key: str) -> int:
        return self.queue_depth(self.counters[routing_key])

    def reset_count(self, routing_key: str) -> None:
        self._ch.queue_purge(self.counters[routing_key])

    def queue_depth(self, queue: str) -> int:
        return int(self._ch.queue_declare(queue, passive=True).method.message_count)

    def wait_consumers(self, queue: str, n: int, timeout: float = 120) -> None:
        """Wait until ``queue`` exists and ``n`` consumers (worker processes) hold it."""

        def ready() -> bool:
            try:
                ok = self._ch.queue_declare(queue, passive=True).method.consumer_count >= n
            except pika.exceptions.ChannelClosedByBroker:
                self._ch = self._conn.channel()
                return False
            return bool(ok)

        self.poll(ready, timeout=timeout, what=f"{n} consumers on {queue}", every=0.2)

    def publish_bodies(self, queue: str, bodies: Iterable[bytes]) -> int:
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        n = 0
        for body in bodies:
            self._ch.basic_publish("", queue, body, props)
            n += 1
        return n

    def sleep(self, seconds: float) -> None:
        """Sleep while keeping the AMQP connection serviced (heartbeats)."""
        self._conn.sleep(seconds)

    def poll(
        self,
        done: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        every: float = 0.02,
    ) -> float:
        """Wait for ``done``; return the monotonic time it became true."""
        deadline = time.monotonic() + timeout
        while True:
            if done():
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n"
                    f"--- logs ---\n{self.logs()[-3000:]}"
                )
            self._conn.sleep(every)

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def scalar(self, statement: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(statement), params).scalar()

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=10)
        self.procs.clear()

    def close(self) -> None:
        self.stop_all()
        with contextlib.suppress(Exception):
            self._conn.close()
        self.engine.dispose()


def purge_all() -> None:
    purge_queues()


def rabbitmq_version() -> str:
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
    try:
        props = conn._impl.server_properties
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        conn.close()


__all__ = ["ALL_QUEUES", "BenchStack", "Memory", "delete_queues", "memory_of", "rss_kib"]
