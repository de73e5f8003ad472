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
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import create_engine, select, text

from messages.common import CommandBase
from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE, command_bytes, route_for
from tests.services import POSTGRES_ADMIN_URL, RABBITMQ_URL
from workers.storage import tables as t
from workers.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]


def create_database(prefix: str = "paylink_it") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def purge_queues() -> None:
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    ch = conn.channel()
    for queue in ALL_QUEUES:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            try:
                ch.queue_purge(name)
            except pika.exceptions.ChannelClosedByBroker:
                ch = conn.channel()
    conn.close()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

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

    def __post_init__(self) -> None:
        self.engine = create_engine(
            self.database_url.replace("postgresql+psycopg", "postgresql+psycopg")
        )
        self._conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
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
            "BROKER_URL": RABBITMQ_URL,
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
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_worker(
        self,
        *,
        processes: int = 1,
        threads: int = 4,
        module: str = "workers.actors",
        queues: Iterable[str] = (),
    ) -> Proc:
        argv = [sys.executable, "-m", "dramatiq", module, "-p", str(processes), "-t", str(threads)]
        queues = list(queues)
        if queues:
            argv += ["-Q", *queues]
        return self.start("worker", argv)

    def start_relay(self) -> Proc:
        code = (
            "import asyncio; from workers.relay import Relay; "
            "from workers.settings import get_settings; asyncio.run(Relay(get_settings()).run())"
        )
        return self.start("relay", [sys.executable, "-c", code])

    def start_scheduler(self) -> Proc:
        code = (
            "from workers.scheduler import Scheduler; "
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
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
        found = self.wait_for(
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
        return self._ch.queue_declare(queue, passive=True).method.message_count

    def get_dead_letter(self, queue: str) -> tuple[Any, bytes] | None:
        method, props, body = self._ch.basic_get(f"{queue}.XQ", auto_ack=True)
        return None if method is None else (props, body)


def now() -> datetime:
    return datetime.now(UTC)


def token_from_outbox(outbox_dir: Path, link_id: str) -> str:
    """What the customer clicks: the token in the message paylink left in the file outbox."""
    import re

    for suffix in (".eml", ".json"):
        path = outbox_dir / f"{link_id}{suffix}"
        if path.exists():
            match = re.search(r"/l/([A-Za-z0-9_\-]{40,})", path.read_text(errors="replace"))
            assert match, f"no link in {path}"
            return match.group(1)
    raise AssertionError(f"no message for link {link_id} in {outbox_dir}")
