"""Fixtures for the operations tests: a scratch database, the CLI, a small shop in it.

The CLI runs in-process (typer's CliRunner) with DATABASE_URL and BROKER_URL set for
the command; the shop's orders are made through the domain and the SQL unit of work,
exactly as the workers make them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from tests.ops.support import ROOT, Cli, SeededShop, Shop, Started, declare_queues, make_shop
from tests.services import require_postgres, require_rabbitmq
from workers.cli.main import app
from workers.devtools.commands import configure_store, create_order
from workers.devtools.harness import create_database, create_vhost, delete_vhost, drop_database
from workers.devtools.services import rabbitmq_url
from workers.settings import get_settings
from workers.storage.migrate import upgrade


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with nothing in it (not even alembic's version table)."""
    require_postgres()
    url = create_database("paylink_ops")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    require_postgres()
    url = create_database("paylink_ops")
    yield url
    drop_database(url)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, database: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    env = {
        "DATABASE_URL": database,
        "BROKER_URL": rabbitmq_url(),
        "PAYLINK_OUTBOX_DIR": str(tmp_path / "outbox"),
        # Wide tables, as on an operator's terminal: full order ids in one cell.
        "COLUMNS": "250",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        get_settings.cache_clear()
        return runner.invoke(app, list(args), input=input)

    return run


# ---- a shop with orders, made through the domain ----------------------------------


@pytest.fixture(scope="module")
def seeded(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededShop]:
    shop = make_shop(database, tmp_path_factory.mktemp("outbox"))
    shop.ok(configure_store())
    sent = uuid.uuid4()
    shop.ok(create_order(sent, customer={"email": "anna@example.com", "name": "Anna Andersson"}))
    shop.deliver(sent)
    placed, token = shop.placed_order(
        email=None, phone="+46701234567", merchant_reference1="INV-77"
    )
    shop.capture(placed, 60_000)
    shop.refund(placed, 10_000)
    yield SeededShop(shop, sent, placed, token)
    shop.app.engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """A configured store on a fresh database of each kind paylink supports."""
    if request.param == "postgresql":
        require_postgres()
        url = create_database("paylink_ops")
    else:
        url = f"sqlite:///{tmp_path}/paylink.db"
        upgrade(url)
    shop = make_shop(url, tmp_path / "outbox")
    shop.ok(configure_store())
    yield shop
    shop.app.engine.dispose()
    if request.param == "postgresql":
        drop_database(url)


# ---- RabbitMQ ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    """A private RabbitMQ vhost with every command queue declared as the workers do:
    the fixed queue names, shared with no other test run."""
    require_rabbitmq()
    url = create_vhost("paylink-ops")
    declare_queues(url)
    yield url
    delete_vhost(url)


@pytest.fixture
def broker_url(vhost: str, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The private vhost, also as BROKER_URL for the command under test."""
    monkeypatch.setenv("BROKER_URL", vhost)
    get_settings.cache_clear()
    return vhost


@pytest.fixture
def channel(broker_url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    yield connection.channel()
    if connection.is_open:
        connection.close()


# ---- processes ---------------------------------------------------------------------


@pytest.fixture
def start(database: str, vhost: str, tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start a paylink process on the scratch database and vhost, in a session of its
    own (killed with its children at the end); ``env`` adds variables."""
    started: list[Started] = []
    base = {
        **os.environ,
        "DATABASE_URL": database,
        "BROKER_URL": vhost,
        "PAYLINK_OUTBOX_DIR": str(tmp_path / "outbox"),
        "dramatiq_prom_db": str(tmp_path / "prometheus"),
        "PAYLINK_LOG_FORMAT": "json",
    }

    def run(*argv: str, env: dict[str, str] | None = None) -> Started:
        log = tmp_path / f"process-{len(started)}.log"
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**base, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Started(process, log))
        return started[-1]

    yield run
    for each in started:
        if each.process.poll() is None:
            os.killpg(each.process.pid, signal.SIGKILL)
            each.process.wait()
