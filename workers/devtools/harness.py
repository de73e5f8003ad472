"""A real paylink on real services, for integration and reliability tests.

``Harness`` owns a scratch PostgreSQL database, purges the paylink queues, starts
worker / relay / scheduler processes exactly as production does (subprocesses),
publishes commands as an upstream system would (raw Dramatiq bytes over AMQP) and
reads the resulting events from a queue bound to ``paylink.events``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue as queue_module
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import create_engine, select, text

from messages.common import CommandBase
from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE, command_bytes, route_for
from workers.devtools.services import postgres_admin_url, rabbitmq_url
from workers.storage import tables as t
from workers.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


def create_database(prefix: str = "paylink_it", revision: str = "head") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = postgres_admin_url().rsplit("/", 1)[0] + f"/{name}"
    upgrade(url, revision)
    return url


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def purge_queues(url: str | None = None) -> None:
    """Empty every paylink queue, with its .DQ and .XQ."""
    _each_queue(url, ALL_QUEUES, lambda ch, name: ch.queue_purge(name))


def delete_queues(names: Iterable[str], url: str | None = None) -> None:
    """Delete ``names``, each with its .DQ and .XQ."""
    _each_queue(url, names, lambda ch, name: ch.queue_delete(name))


def _each_queue(
    url: str | None, queues: Iterable[str], action: Callable[[BlockingChannel, str], object]
) -> None:
    """``action`` on each queue, its .DQ and its .XQ; one that does not exist is skipped."""
    conn = pika.BlockingConnection(pika.URLParameters(url or rabbitmq_url()))
    ch = conn.channel()
    for queue in queues:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            try:
                action(ch, name)
            except pika.exceptions.ChannelClosedByBroker:
                ch = conn.channel()
    conn.close()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    #: The command line it was started with (``Harness.respawn`` starts it again).
    argv: tuple[str, ...] = ()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 3) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


@dataclass
class Harness:
    database_url: str
    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    #: AMQP URL of the broker (a private vhost keeps concurrent runs apart).
    broker_url: str = field(default_factory=rabbitmq_url)

    def __post_init__(self) -> None:
        self.engine = create_engine(
            self.database_url.replace("postgresql+psycopg", "postgresql+psycopg")
        )
        self._conn = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        self._ch = self._conn.channel()
        self._ch.confirm_delivery()
        self._ch.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        self.events_queue = f"test.events.{uuid.uuid4().hex[:8]}"
        self._ch.queue_declare(self.events_queue, exclusive=True)
        self._ch.queue_bind(self.events_queue, EVENTS_EXCHANGE, "#")
        self.events: list[dict[str, Any]] = []

    # ---- processes -----------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "BROKER_URL": self.broker_url,
            "PAYLINK_OUTBOX_DIR": str(self.workdir / "outbox"),
            "PAYLINK_LOG_FORMAT": "json",
            "PAYLINK_RELAY_POLL_SECONDS": "0.05",
            "PAYLINK_SCHEDULER_POLL_SECONDS": "0.5",
            "PAYLINK_MAX_RETRIES": "5",
            "dramatiq_prom_db": str(self.workdir / "prom"),
            **self.env_overrides,
        }

    def start(self, name: str, argv: list[str], **extra_env: str) -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log, tuple(argv))
        self.procs.append(proc)
        return proc

    def start_worker(
        self,
        *,
        processes: int = 1,
        threads: int = 4,
        module: str = "workers.runtime.actors",
        queues: Iterable[str] = (),
    ) -> Proc:
        argv = [sys.executable, "-m", "dramatiq", module, "-p", str(processes), "-t", str(threads)]
        queues = list(queues)
        if queues:
            argv += ["-Q", *queues]
        return self.start("worker", argv)

    def start_relay(self, partition: int | None = None, *, claim: bool = False) -> Proc:
        code = (
            "from workers.processes.relay import Relay, run_event_loop; "
            "from workers.settings import get_settings; "
            f"run_event_loop(Relay(get_settings(), partition={partition!r}, claim={claim!r}).run())"
        )
        return self.start("relay", [sys.executable, "-c", code])

    def start_scheduler(self) -> Proc:
        code = (
            "from workers.processes.scheduler import Scheduler; "
            "from workers.settings import get_settings; Scheduler(get_settings()).run()"
        )
        return self.start("scheduler", [sys.executable, "-c", code])

    def start_all(self, *, workers: int = 1) -> None:
        for _ in range(workers):
            self.start_worker()
        self.start_relay()
        self.start_scheduler()

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        with contextlib.suppress(Exception):
            self._conn.close()
        self.engine.dispose()

    def respawn(self, proc: Proc) -> Proc:
        """Start a fresh process with the same name and command line as ``proc``."""
        return self.start(proc.name, list(proc.argv))

    def logs(self) -> str:
        return "\n".join(p.log.read_text(errors="replace") for p in self.procs if p.log.exists())

    # ---- publishing ----------------------------------------------------------

    def publish(self, command: CommandBase) -> None:
        self._ch.basic_publish(
            "",
            route_for(command).queue_name,
            command_bytes(command),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            mandatory=True,
        )

    def publish_raw(self, queue: str, body: bytes) -> None:
        self._ch.queue_declare(queue, passive=True)
        self._ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))

    # ---- observing -----------------------------------------------------------

    def drain_events(self) -> list[dict[str, Any]]:
        while True:
            method, _props, body = self._ch.basic_get(self.events_queue, auto_ack=True)
            if method is None:
                return self.events
            self.events.append(json.loads(body))

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30, what: str = "condition"
    ) -> Any:
        value = poll_until(predicate, timeout, interval=0.1)
        if value:
            return value
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n--- logs ---\n{self.logs()[-6000:]}"
        )

    def events_for(
        self,
        command_id: uuid.UUID | None = None,
        type_: str | None = None,
        order_id: uuid.UUID | None = None,
    ) -> list[dict[str, Any]]:
        self.drain_events()
        return [
            e
            for e in self.events
            if (command_id is None or e.get("command_id") == str(command_id))
            and (type_ is None or e["type"] == type_)
            and (order_id is None or e.get("order_id") == str(order_id))
        ]

    def wait_event(
        self,
        type_: str,
        *,
        command_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = self.wait_for(
            lambda: self.events_for(command_id, type_, order_id),
            timeout,
            f"event {type_} (command {command_id}, order {order_id})",
        )
        return found[0]

    def order_row(self, order_id: uuid.UUID) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.orders).where(t.orders.c.order_id == order_id)
            ).one_or_none()

    def ledger(self, order_id: uuid.UUID) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(t.ledger_entries)
                    .where(t.ledger_entries.c.order_id == order_id)
                    .order_by(t.ledger_entries.c.seq)
                )
            )

    def queue_depth(self, queue: str) -> int:
        return int(self._ch.queue_declare(queue, passive=True).method.message_count)

    def get_dead_letter(self, queue: str) -> tuple[Any, bytes] | None:
        method, props, body = self._ch.basic_get(f"{queue}.XQ", auto_ack=True)
        return None if method is None else (props, body)


def now() -> datetime:
    return datetime.now(UTC)


def poll_until(predicate: Callable[[], Any], timeout: float, *, interval: float = 0.1) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds (else the last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def token_from_outbox(outbox_dir: Path, link_id: str) -> str:
    """What the customer clicks: the token in the message paylink left in the file outbox."""
    for suffix in (".eml", ".json"):
        path = outbox_dir / f"{link_id}{suffix}"
        if path.exists():
            match = re.search(r"/l/([A-Za-z0-9_\-]{40,})", path.read_text(errors="replace"))
            assert match, f"no link in {path}"
            return match.group(1)
    raise AssertionError(f"no message for link {link_id} in {outbox_dir}")


# ---- reliability helpers: private vhosts, a reconnecting publisher, an event collector,
# ---- and a supervisor that restarts exited processes ------------------------------------

_RETRYABLE_AMQP = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    ConnectionError,
    OSError,
)


def create_vhost(prefix: str = "paylink-test") -> str:
    """A private RabbitMQ vhost (via rabbitmqctl), so concurrent runs never share queues."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return rabbitmq_url().rsplit("/", 1)[0] + "/" + name


def delete_vhost(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


class Publisher:
    """Publishes as an upstream system does, reconnecting and retrying on connection loss.

    With ``confirm`` every publish waits for the broker's confirm, so a publish that
    raised is simply published again (at-least-once; command ids make it harmless).
    """

    def __init__(
        self, url: str | None = None, *, confirm: bool = True, retry_for: float = 90
    ) -> None:
        url = url or rabbitmq_url()
        self.url, self.confirm, self.retry_for = url, confirm, retry_for
        self.reconnects = 0
        self.published = 0
        self._conn: pika.BlockingConnection | None = None
        self._ch: BlockingChannel | None = None
        self._connect()

    def _connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.connection_attempts, params.retry_delay, params.socket_timeout = 1, 0, 5
        self._conn = pika.BlockingConnection(params)
        self._ch = self._conn.channel()
        if self.confirm:
            self._ch.confirm_delivery()

    def _reconnect(self, deadline: float) -> None:
        with contextlib.suppress(Exception):
            assert self._conn is not None
            self._conn.close()
        while True:
            try:
                self._connect()
                self.reconnects += 1
                return
            except _RETRYABLE_AMQP:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _channel(self) -> BlockingChannel:
        if self._ch is None:
            raise RuntimeError("the publisher is not connected")
        return self._ch

    def publish_bytes(
        self, queue: str, body: bytes, *, headers: dict[str, Any] | None = None
    ) -> None:
        deadline = time.monotonic() + self.retry_for
        props = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", headers=headers
        )
        while True:
            try:
                self._channel().basic_publish("", queue, body, props, mandatory=self.confirm)
                self.published += 1
                if not self.confirm and self.published % 500 == 0:
                    assert self._conn is not None
                    self._conn.process_data_events(0)
                return
            except _RETRYABLE_AMQP:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                self._reconnect(deadline)

    def publish(self, command: CommandBase) -> None:
        self.publish_bytes(route_for(command).queue_name, command_bytes(command))

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready, consumers) of ``queue``, reconnecting if needed."""
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                ok = self._channel().queue_declare(queue, passive=True).method
                return ok.message_count, ok.consumer_count
            except _RETRYABLE_AMQP:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                self._reconnect(deadline)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self._conn is not None
            self._conn.close()


class EventCollector:
    """Every event published to ``paylink.events``, de-duplicated by ``event_id``.

    Consumes a durable queue (it survives a broker restart) from a background thread
    that reconnects by itself. ``new`` yields each distinct event once, in arrival order.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or rabbitmq_url()
        self.queue = f"test.events.{uuid.uuid4().hex[:8]}"
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_command: dict[str, list[dict[str, Any]]] = {}
        self.deliveries = 0
        self.reconnects = 0
        self.new: queue_module.SimpleQueue[dict[str, Any]] = queue_module.SimpleQueue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> EventCollector:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError(f"event collector could not bind {self.queue}")
        return self

    def _consume(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            ch = conn.channel()
            ch.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
            ch.queue_declare(self.queue, durable=True)
            ch.queue_bind(self.queue, EVENTS_EXCHANGE, "#")
            ch.basic_qos(prefetch_count=1000)
            self._ready.set()
            for method, _props, body in ch.consume(self.queue, inactivity_timeout=0.1):
                if self._stop.is_set():
                    break
                if method is None:
                    continue
                self._add(json.loads(body))
                ch.basic_ack(method.delivery_tag)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except _RETRYABLE_AMQP:
                self.reconnects += 1
                time.sleep(0.5)

    def _add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.deliveries += 1
            if event["event_id"] in self.by_id:
                return
            self.by_id[event["event_id"]] = event
            if event.get("command_id"):
                self.by_command.setdefault(event["command_id"], []).append(event)
        self.new.put(event)

    def for_command(self, command_id: uuid.UUID | str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.by_command.get(str(command_id), ()))

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.by_id.values() if type_ is None or e["type"] == type_]

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30, what: str = "condition"
    ) -> Any:
        value = poll_until(predicate, timeout, interval=0.05)
        if value:
            return value
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with contextlib.suppress(Exception):
            conn = pika.BlockingConnection(pika.URLParameters(self.url))
            conn.channel().queue_delete(self.queue)
            conn.close()


class Supervisor:
    """What systemd or Kubernetes does for paylink's processes: restart any that exited.

    ``restarts`` records (name, exit code) for each restart; ``kill`` SIGKILLs a
    process group on purpose (counted in ``kills``) and lets the loop restart it.
    """

    def __init__(self, harness: Harness, *, interval: float = 0.2) -> None:
        self.harness = harness
        self.interval = interval
        self.watched: dict[str, Proc] = {}
        self.restarts: list[tuple[str, int | None]] = []
        self.kills = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def watch(self, key: str, proc: Proc) -> Proc:
        with self._lock:
            self.watched[key] = proc
        return proc

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def kill(self, key: str) -> None:
        with self._lock:
            self.watched[key].kill()
            self.kills += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for key, proc in list(self.watched.items()):
                    code = proc.popen.poll()
                    if code is not None and not self._stop.is_set():
                        self.restarts.append((key, code))
                        self.watched[key] = self.harness.respawn(proc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
