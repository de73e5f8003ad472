"""A shop on a real SQLite database for the link page, and a publisher that is the worker.

Orders are made through ``domain.bus`` and the SQL unit of work, exactly as the
workers make them. What the page publishes is applied the same way at once
(``WorkerPublisher``), so a test sees the order move as it would with RabbitMQ and a
worker in between; the browser test runs the real processes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from domain.bus import Outcome, handle
from domain.ports import Context
from messages import commands as c
from messages.common import CommandBase
from tests.fakes import FakeClock, RecordingNotifier, SequentialTokens
from workers.devtools.commands import configure_store, create_order, merchant
from workers.storage import tables as t
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.migrate import upgrade
from workers.storage.uow import SqlUnitOfWork
from workers.web.publisher import PublishFailed
from workers.web.security import RateLimiter

SECRET = b"test-secret-for-csrf-fields-0123"


class Shop:
    """A store with orders in a scratch SQLite database, driven by commands."""

    def __init__(self, url: str) -> None:
        upgrade(url)
        self.engine: Engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.clock = FakeClock()
        self.tokens = SequentialTokens()
        self.ctx = Context(clock=self.clock, tokens=self.tokens, notifier=RecordingNotifier())

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, now=self.clock.now)

    def run(self, command: CommandBase) -> Outcome:
        return handle(command, self.uow, self.ctx)

    def configure(self, **kw: Any) -> None:
        currencies = ["SEK", "NOK", "DKK", "EUR", "CHF", "GBP", "USD"]
        kw.setdefault("agreement_currencies", currencies)
        assert self.run(configure_store(**kw)).status == "accepted"

    def order(self, **kw: Any) -> tuple[uuid.UUID, str]:
        """A new order and the token of its link (what the customer's message holds)."""
        cmd = create_order(**kw)
        outcome = self.run(cmd)
        assert outcome.status == "accepted", outcome
        return cmd.order_id, self.tokens.issued[-1]

    def resend(self, order_id: uuid.UUID) -> str:
        assert self.run(merchant(c.ResendPaymentLink, order_id)).status == "accepted"
        return self.tokens.issued[-1]

    def cancel(self, order_id: uuid.UUID) -> None:
        assert self.run(merchant(c.CancelOrder, order_id)).status == "accepted"

    def row(self, order_id: uuid.UUID) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.orders).where(t.orders.c.order_id == order_id)).one()


@dataclass
class WorkerPublisher:
    """Applies each published command as a worker would, and remembers it."""

    shop: Shop
    published: list[CommandBase] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    broker_down: bool = False

    def publish(self, command: CommandBase) -> None:
        if self.broker_down:
            raise PublishFailed("broker unreachable (test)")
        self.published.append(command)
        self.outcomes.append(self.shop.run(command))

    def of(self, kind: type[CommandBase]) -> list[Any]:
        return [cmd for cmd in self.published if isinstance(cmd, kind)]


class HoldingPublisher(WorkerPublisher):
    """A broker whose worker has not applied anything yet: commands are only held."""

    def publish(self, command: CommandBase) -> None:
        self.published.append(command)


@dataclass
class Page:
    shop: Shop
    publisher: WorkerPublisher
    client: TestClient
    limiter: RateLimiter
    clock_seconds: list[float]

    def pay(self, token: str, outcome: str = "approve", **form: str) -> Any:
        """Open the page (for its cookie and CSRF field) and submit the pay form."""
        page = self.client.get(f"/l/{token}")
        fields = {"csrf": csrf_field(page.text), "outcome": outcome, **form}
        return self.client.post(f"/l/{token}/pay", data=fields, follow_redirects=False)


def csrf_field(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
