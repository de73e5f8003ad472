from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Harness, create_database, drop_database, purge_queues
from tests.services import require_postgres, require_rabbitmq


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
        purge_queues()
        url = create_database()
        h = Harness(url, tmp_path, env_overrides=env)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
        drop_database(h.database_url)
    purge_queues()


@pytest.fixture
def harness(harness_factory) -> Harness:  # type: ignore[no-untyped-def]
    return harness_factory()
