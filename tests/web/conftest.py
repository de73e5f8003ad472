"""Fixtures for the link page: a shop on a scratch SQLite database, the page over it."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from starlette.testclient import TestClient

# The real service for the browser test: a private database and vhost per harness.
from tests.integration.conftest import harness_factory, pg_database  # noqa: F401
from tests.web.support import SECRET, HoldingPublisher, Page, Shop, WorkerPublisher
from workers.observability.logs import configure_logging
from workers.settings import Settings
from workers.web.app import create_app
from workers.web.callback import CallbackVerifier
from workers.web.gateway import CheckoutGateway, SandboxGateway
from workers.web.security import RateLimiter


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    made = Shop(f"sqlite:///{tmp_path}/web.db")
    made.configure()
    yield made
    made.engine.dispose()


@pytest.fixture
def page_factory(shop: Shop) -> Iterator[Callable[..., Page]]:
    clients: list[TestClient] = []

    def make(
        rate_limit: int = 1000,
        *,
        hold: bool = False,
        proof_key: tuple[str, bytes] | None = None,
        gateway: CheckoutGateway | None = None,
        callback_secrets: dict[str, list[bytes]] | None = None,
    ) -> Page:
        seconds = [0.0]
        limiter = RateLimiter(rate_limit, window=60.0, clock=lambda: seconds[0])
        publisher = (HoldingPublisher if hold else WorkerPublisher)(shop)
        app = create_app(
            shop.engine,
            publisher,
            gateway or SandboxGateway(),
            secret=SECRET,
            rate_limit_per_minute=rate_limit,
            now=shop.clock.now,
            limiter=limiter,
            proof_key=proof_key,
            # The callbacks' clock is the shop's: a test moves both at once.
            callback_verifier=CallbackVerifier(
                callback_secrets or {}, clock=lambda: shop.clock.now().timestamp()
            ),
        )
        client = TestClient(app, base_url="http://127.0.0.1:8080")
        clients.append(client)
        return Page(shop, publisher, client, limiter, seconds)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def page(page_factory: Callable[..., Page]) -> Page:
    return page_factory()


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """paylink's JSON logging into a buffer; the process's logging is restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(Settings(PAYLINK_LOG_FORMAT="json"), stream=stream, cache_loggers=False)
    yield stream
    root.handlers, root.level = saved
    structlog.reset_defaults()
