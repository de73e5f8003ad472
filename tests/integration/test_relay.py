"""The relay's batch against a real broker: what the confirms say decides what is sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiormq
import pytest
from sqlalchemy import insert, select

from messages.routing import EVENTS_EXCHANGE
from tests.services import require_postgres, require_rabbitmq
from workers.devtools.harness import create_database, create_vhost, delete_vhost, drop_database
from workers.processes.relay import Relay
from workers.settings import Settings
from workers.storage import tables as t
from workers.storage.engine import make_engine
from workers.storage.migrate import upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    require_rabbitmq()
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path}/paylink.db"
        upgrade(database)
    else:
        require_postgres()
        database = create_database("paylink_relay")
    broker = create_vhost()
    try:
        yield Settings(DATABASE_URL=database, BROKER_URL=broker)  # type: ignore[call-arg]
    finally:
        delete_vhost(broker)
        if request.param == "postgresql":
            drop_database(database)


def _outbox_row(kind: str, destination: str) -> dict[str, object]:
    return {
        "kind": kind,
        "destination": destination,
        "message_id": uuid.uuid4(),
        "order_id": uuid.uuid4(),
        "payload": '{"x": 1}',
        "created_at": datetime.now(UTC),
    }


async def _publish_one_batch(
    relay: Relay, settings: Settings, *, queue_arguments: dict[str, object] | None = None
) -> int:
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        await channel.declare_queue(
            "paylink.relay-test",
            durable=True,
            arguments=queue_arguments,  # type: ignore[arg-type]
        )
        underlay = await channel.get_underlay_channel()
        try:
            with relay.engine.connect() as db:
                return await relay._publish_batch(underlay, db)
        finally:
            # The channel's per-message bookkeeping is left empty, confirmed or not.
            await asyncio.sleep(0.1)
            assert not underlay.message_id_delivery_tag
            assert not underlay.confirmations


def _received(settings: Settings, queue: str = "paylink.relay-test") -> list[tuple[str, bytes]]:
    """(message id, body) of every message in ``queue``, in queue order."""

    async def drain() -> list[tuple[str, bytes]]:
        connection = await aio_pika.connect(settings.broker_url)
        async with connection:
            channel = await connection.channel()
            q = await channel.declare_queue(queue, passive=True)
            out = []
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                out.append((str(message.message_id), message.body))
            return out

    return asyncio.run(drain())


def _unsent(relay: Relay) -> int:
    with relay.engine.connect() as conn:
        return len(conn.execute(select(t.outbox.c.id).where(t.outbox.c.sent_at.is_(None))).all())


def test_a_batch_is_marked_sent_once_every_message_is_confirmed(settings: Settings) -> None:
    relay = Relay(settings, make_engine(settings.database_url))
    rows = [_outbox_row("event", "order.created") for _ in range(40)]
    rows += [_outbox_row("command", "paylink.relay-test") for _ in range(10)]
    with relay.engine.begin() as conn:
        conn.execute(insert(t.outbox), rows)

    assert asyncio.run(_publish_one_batch(relay, settings)) == 50
    assert _unsent(relay) == 0


def test_a_returned_command_fails_the_batch_and_stays_unsent(settings: Settings) -> None:
    relay = Relay(settings, make_engine(settings.database_url))
    rows = [_outbox_row("event", "order.created") for _ in range(5)]
    rows.append(_outbox_row("command", "paylink.no-such-queue"))  # the broker returns it
    with relay.engine.begin() as conn:
        conn.execute(insert(t.outbox), rows)

    with pytest.raises(RuntimeError, match="was returned"):
        asyncio.run(_publish_one_batch(relay, settings))
    assert _unsent(relay) == 6  # nothing of the batch is marked: it is published again


def test_a_batch_keeps_its_order_and_bodies_larger_than_a_frame(settings: Settings) -> None:
    """One write carries the whole batch: order, ids and split bodies arrive intact."""
    relay = Relay(settings, make_engine(settings.database_url))
    rows = [_outbox_row("command", "paylink.relay-test") for _ in range(30)]
    big = '{"x": "' + "é" * 200_000 + '"}'  # 400 kB: four body frames at frame_max 128 kB
    rows[7]["payload"] = big
    with relay.engine.begin() as conn:
        conn.execute(insert(t.outbox), rows)

    assert asyncio.run(_publish_one_batch(relay, settings)) == 30
    received = _received(settings)
    assert [m for m, _ in received] == [str(r["message_id"]) for r in rows]
    assert received[7][1] == big.encode()
    assert all(body == b'{"x": 1}' for i, (_, body) in enumerate(received) if i != 7)


def test_a_nacked_message_fails_the_batch_and_stays_unsent(settings: Settings) -> None:
    """A queue that refuses what exceeds its length makes the broker nack the publish."""
    relay = Relay(settings, make_engine(settings.database_url))
    rows = [_outbox_row("command", "paylink.relay-test") for _ in range(3)]
    with relay.engine.begin() as conn:
        conn.execute(insert(t.outbox), rows)

    full = {"x-max-length": 1, "x-overflow": "reject-publish"}
    with pytest.raises(aiormq.exceptions.DeliveryError):
        asyncio.run(_publish_one_batch(relay, settings, queue_arguments=full))
    assert _unsent(relay) == 3
