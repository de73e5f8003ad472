"""The outbox relay: publishes committed events and follow-up commands, then marks them.

Loop: in one database transaction, take the oldest unsent rows (``FOR UPDATE SKIP
LOCKED``, so several relays share the work without double-publishing), publish them
all with publisher confirms (pipelined, one round of confirms per batch), mark them
sent, commit. A crash before the commit leaves them unsent, and they are published
again: delivery is at-least-once and every consumer de-duplicates by id.

Partitions: one relay is one Python process, CPU-bound on AMQP framing under load
(measured here: 20 000 due expiries published in 7.3 s by one relay, 3.3 to 3.7 s by
two; ``python -m bench --quick --only expiry --expiry-n 20000``), so several may
run, each publishing the rows whose order hashes to its partitions (rows without an
order go to partition 0). All of an order's messages go through one relay, in commit
order, so consumers see an order's events in the order they happened. With ``claim``
(deploy/) relays take partitions live (``workers.processes.relay_partitions``): however many
run, every partition is published by exactly one. ``partition=i`` (``paylink run``)
fixes one; a relay with neither takes every row: run either that one or partitioned
ones, not both.

Link tokens travel inside send-link commands; once such a command is confirmed its
payload is blanked, so the database keeps only the token hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import psycopg
import structlog
import uvloop
from pamqp.commands import Basic
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Text,
    Update,
    any_,
    bindparam,
    case,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url

from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE, event_type_of
from workers.observability.health import start_health_server
from workers.observability.logs import configure_logging
from workers.processes import metrics
from workers.processes.relay_partitions import PartitionClaim, PartitionLost
from workers.runtime.broker import XQ_ARGUMENTS, queue_arguments
from workers.runtime.bulk_publish import Outgoing, publish_batch
from workers.settings import Settings, first_broker_url
from workers.storage import tables as t
from workers.storage.engine import make_engine

log = structlog.get_logger("paylink.relay")


async def declare_topology(
    channel: aio_pika.abc.AbstractChannel, settings: Settings
) -> aio_pika.abc.AbstractExchange:
    """Declare the events exchange and every command queue exactly as workers do."""
    for queue in ALL_QUEUES:
        args = queue_arguments(queue, quorum=settings.quorum_queues)
        await channel.declare_queue(queue, durable=True, arguments=args)
        await channel.declare_queue(f"{queue}.DQ", durable=True, arguments=args)
        await channel.declare_queue(f"{queue}.XQ", durable=True, arguments=XQ_ARGUMENTS)
    return await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


def partition_clause(partition: int, partitions: int) -> ColumnElement[bool]:
    """Outbox rows of partition ``partition`` of ``partitions`` (PostgreSQL)."""
    return partitions_clause(frozenset({partition}), partitions)


def partitions_clause(held: frozenset[int], partitions: int) -> ColumnElement[bool]:
    """Outbox rows of the partitions ``held`` of ``partitions`` (PostgreSQL); none if empty."""
    hashed = func.hashtext(func.coalesce(cast(t.outbox.c.order_id, Text), ""))
    return (hashed.op("&")(0x7FFFFFFF) % partitions).in_(sorted(held))


def _mark_sent(postgresql: bool) -> Update:
    """Marks a published batch sent; a command's payload (it carries a link token) is
    blanked once the broker has it. On PostgreSQL the ids travel as one array
    (``= ANY``), not as one bound parameter per row rendered into the statement."""
    ids = (
        t.outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
        if postgresql
        else t.outbox.c.id.in_(bindparam("ids", expanding=True))
    )
    return (
        update(t.outbox)
        .where(ids)
        .values(
            sent_at=bindparam("sent_at"),
            payload=case((t.outbox.c.kind == "command", "{}"), else_=t.outbox.c.payload),
        )
    )


#: PostgreSQL channel notified by every INSERT into the outbox (migration 0002).
OUTBOX_CHANNEL = "outbox_committed"


class OutboxSignal:
    """Wakes the relay as soon as a transaction commits outbox rows.

    On PostgreSQL a trigger notifies ``OUTBOX_CHANNEL`` at each commit that wrote
    the outbox; this listens on its own connection (psycopg, autocommit) and sets an
    event. Polling every ``relay_poll_seconds`` stays as the fallback: on SQLite, while
    the listening connection is down, and for anything a notification missed.
    """

    def __init__(self, database_url: str) -> None:
        self.conninfo = _conninfo(database_url)
        self.event = asyncio.Event()

    def clear(self) -> None:
        self.event.clear()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)

    async def listen(self, stop: asyncio.Event) -> None:
        if self.conninfo is None:
            return
        backoff = 0.5
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    backoff = 0.5
                    self.event.set()  # rows may have been committed while not listening
                    async for _ in conn.notifies():
                        self.event.set()
            except Exception as exc:  # database down: poll meanwhile, listen again later
                log.warning("outbox listener down, polling", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 10.0)


def _conninfo(database_url: str) -> str | None:
    """The libpq form of a PostgreSQL SQLAlchemy URL (None for other databases)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Relay:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        partition: int | None = None,
        *,
        claim: bool = False,
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.unsent = t.outbox.c.sent_at.is_(None)
        self._mark = _mark_sent(self.engine.dialect.name == "postgresql")
        self.claim: PartitionClaim | None = None
        partitions = settings.relay_partitions
        self._take(None)
        if partitions > 1 and (claim or partition is not None):
            conninfo = _conninfo(settings.database_url)
            if conninfo is None:
                raise ValueError("relay partitions need PostgreSQL; run one relay on SQLite")
            if claim:
                self.claim = PartitionClaim(conninfo, partitions)
                self._take(frozenset())
            elif partition is not None:
                if not 0 <= partition < partitions:
                    raise ValueError(f"partition {partition} is not one of 0..{partitions - 1}")
                self._take(frozenset({partition}))
        metrics.PARTITIONS.set(partitions)
        self.published = 0
        self.connected = False
        self._stop = asyncio.Event()
        self.signal = OutboxSignal(settings.database_url)

    def stop(self) -> None:
        self._stop.set()
        self.signal.event.set()

    def ready(self) -> bool:
        """Publishing with a broker connection, or a healthy standby: a spare that can
        take over is as ready as it is meant to be (a standby reported unready stalled
        Kubernetes rollouts and node drains)."""
        if self.claim is not None and not self.claim.held:
            return self.claim.healthy_standby()
        return self.connected

    def _take(self, held: frozenset[int] | None) -> None:
        """The rows this relay publishes (``held``: its partitions; None: every row); the
        batch query is built once for them (a statement built per batch cost SQLAlchemy
        a new cache key every time)."""
        self.held = held
        partitions = self.settings.relay_partitions
        where: list[ColumnElement[bool]] = [self.unsent]
        if held is not None:
            where.append(partitions_clause(held, partitions))
        metrics.HELD.set(partitions if held is None else len(held))
        self._batch_query = (
            select(
                t.outbox.c.id,
                t.outbox.c.kind,
                t.outbox.c.destination,
                t.outbox.c.message_id,
                t.outbox.c.payload,
                t.outbox.c.created_at,
            )
            .where(*where)
            .order_by(t.outbox.c.id)
            .limit(self.settings.relay_batch_size)
            .with_for_update(skip_locked=True)
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _publish_batch(self, channel: aiormq.abc.AbstractChannel, db: Connection) -> int:
        """Publish one batch of unsent rows, wait for every confirm, mark them sent.

        The batch goes out in one socket write on the underlying aiormq channel
        (``workers.runtime.bulk_publish``), with one confirmation per message.
        ``db`` is the relay's own connection, held across batches.
        """
        with db.begin():
            rows = db.execute(self._batch_query).all()
            if not rows:
                return 0
            outgoing = []
            for _id, kind, destination, message_id, payload, _created in rows:
                event = kind == "event"
                properties = Basic.Properties(
                    message_id=str(message_id),
                    content_type="application/json",
                    delivery_mode=2,  # persistent
                    message_type=event_type_of(destination) if event else None,
                )
                outgoing.append(
                    Outgoing(
                        payload.encode(),
                        exchange=EVENTS_EXCHANGE if event else "",
                        routing_key=destination,
                        properties=properties,
                        mandatory=not event,
                    )
                )
            # A nack raises; a returned command (its queue is gone) fails the batch too:
            # the relay reconnects, declares the queues again and publishes it then.
            confirmations = await publish_batch(channel, outgoing)
            for row, confirmation in zip(rows, confirmations, strict=True):
                if not isinstance(confirmation, Basic.Ack):
                    raise RuntimeError(f"{row.destination}: message {row.message_id} was returned")
            now = datetime.now(UTC)
            db.execute(self._mark, {"ids": [r.id for r in rows], "sent_at": now})
        self.published += len(rows)
        metrics.published(len(rows), now, rows[0].created_at)
        return len(rows)

    async def run(self) -> None:
        listener = asyncio.create_task(self.signal.listen(self._stop))
        try:
            await self._run()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            if self.claim is not None:
                await self.claim.release()

    async def _claim_partition(self) -> bool:
        """In claim mode, hold a partition before publishing; False once stopping."""
        if self.claim is None:
            return True
        if not self.claim.held:
            self._take(frozenset())
            held = await self.claim.acquire(self._stop)
            if held is None:
                return False
            self._take(held)
        return True

    async def _check_claim(self) -> None:
        """In claim mode, between batches: still holding? partitions adopted or handed over?"""
        if self.claim is None:
            return
        held = await self.claim.check()
        if not held:
            self._take(frozenset())
            raise PartitionLost("the partition's lock connection is gone")
        if held != self.held:
            self._take(held)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if not await self._claim_partition():
                break
            try:
                connection = await aio_pika.connect(first_broker_url(self.settings.broker_url))
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    await declare_topology(channel, self.settings)
                    underlay = await channel.get_underlay_channel()
                    # One database connection for every batch: no pool checkout and
                    # no liveness ping per batch; an error drops it with the channel.
                    with self.engine.connect() as db:
                        self.connected, backoff = True, 0.5
                        log.info("relay connected")
                        while not self._stop.is_set():
                            await self._check_claim()
                            metrics.LAST_POLL.set_to_current_time()
                            self.signal.clear()  # a commit from now on wakes the wait below
                            n = await self._publish_batch(underlay, db)
                            if n < self.settings.relay_batch_size:
                                await self.signal.wait(self.settings.relay_poll_seconds)
                                # Let a few more commits land: one batch for them all.
                                await self._sleep(self.settings.relay_linger_seconds)
            except Exception as exc:  # broker or database down: back off and retry
                self.connected = False
                log.warning(
                    "relay error, retrying", error=f"{type(exc).__name__}: {exc}", backoff=backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self.connected = False


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop: the relay is one event loop writing a frame per message,
    and libuv's loop and transports cost less per message than asyncio's."""
    uvloop.run(main)


def run_relay(
    settings: Settings,
    *,
    health_port: int | None = 9300,
    partition: int | None = None,
    claim: bool = False,
) -> None:
    configure_logging(settings)
    relay = Relay(settings, partition=partition, claim=claim)
    if partition is not None:
        structlog.contextvars.bind_contextvars(partition=partition)
    if health_port:
        start_health_server(health_port, relay.ready)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, relay.stop)
        await relay.run()

    started = time.monotonic()
    run_event_loop(main())
    logging.getLogger(__name__).info(
        "relay stopped after %.0fs, %d messages published",
        time.monotonic() - started,
        relay.published,
    )
