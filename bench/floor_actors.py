"""The floors: what Dramatiq on this broker and this database can do at best.

Run by the real Dramatiq CLI with paylink's worker settings::

    python -m dramatiq bench.floor_actors -p P -t T -Q bench.noop

Same broker class, middleware and engine settings as ``workers.runtime.actors``; the
messages carry a CreateOrder-sized argument, so decoding costs the same.

- ``bench_noop``: does nothing (floor 1: the broker and Dramatiq alone).
- ``bench_insert``: one PostgreSQL INSERT in its own transaction (floor 2).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import dramatiq
from sqlalchemy import Engine, insert

from bench.acks import AckCounter
from bench.floor_table import INSERT_QUEUE, NOOP_QUEUE, floor_rows
from workers.observability.logs import configure_logging
from workers.runtime.broker import build_broker
from workers.settings import get_settings
from workers.storage.engine import make_engine

configure_logging(get_settings())
broker = build_broker(get_settings())
broker.add_middleware(AckCounter())
dramatiq.set_broker(broker)


@lru_cache(maxsize=1)
def _engine() -> Engine:
    return make_engine(get_settings().database_url)


@dramatiq.actor(actor_name="bench_noop", queue_name=NOOP_QUEUE, broker=broker)
def bench_noop(command: Any) -> None:
    """Floor 1: nothing."""


@dramatiq.actor(actor_name="bench_insert", queue_name=INSERT_QUEUE, broker=broker)
def bench_insert(command: Any) -> None:
    """Floor 2: one INSERT, one transaction."""
    with _engine().begin() as conn:
        conn.execute(
            insert(floor_rows).values(
                id=uuid.uuid4(),
                kind="insert",
                payload=json.dumps(command, separators=(",", ":")),
                created_at=datetime.now(UTC),
            )
        )
