from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.services import require_postgres, require_rabbitmq
from workers.devtools.harness import (
    Harness,
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
)
from workers.runtime.broker import declare_command_queues
from workers.storage.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/paylink.db"
        upgrade(url)
        yield url
    else:
        require_postgres()
        url = create_database("paylink_storage")
        yield url
        drop_database(url)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    require_postgres()
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def harness_factory(pg_database: str, tmp_path: Path) -> Iterator[object]:
    """Build a Harness on a fresh database; every process it started is stopped after."""
    require_rabbitmq()
    made: list[Harness] = []

    def make(**env: str) -> Harness:
        # a private vhost and database: concurrent runs never share queues or rows
        h = Harness(create_database(), tmp_path, env_overrides=env, broker_url=create_vhost())
        made.append(h)
        with pika.BlockingConnection(pika.URLParameters(h.broker_url)) as conn:
            declare_command_queues(conn.channel(), quorum=False)
        return h

    yield make
    for h in made:
        h.close()
        drop_database(h.database_url)
        delete_vhost(h.broker_url)


@pytest.fixture
def harness(harness_factory) -> Harness:  # type: ignore[no-untyped-def]
    return harness_factory()
