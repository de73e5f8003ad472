"""The relay's batch against a real broker: what the confirms say decides what is sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import insert, select

from messages.routing import EVENTS_EXCHANGE
from tests.harness import create_database, create_vhost, delete_vhost, drop_database
from tests.services import require_postgres, require_rabbitmq
from workers.relay import Relay
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


async def _publish_one_batch(relay: Relay, settings: Settings) -> int:
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        await channel.declare_queue("paylink.relay-test", durable=True)
        underlay = await channel.get_underlay_channel()
        with relay.engine.connect() as db:
            return await relay._publish_batch(underlay, db)


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
