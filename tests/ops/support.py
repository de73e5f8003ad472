"""Helpers of the operations tests: the CLI's error contract, a shop, the queues."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import Result

from domain.bus import Outcome, handle
from messages import commands as c
from messages.common import CommandBase
from messages.routing import ALL_QUEUES
from workers.devtools.commands import completed, create_order, merchant, opened
from workers.runtime.broker import build_broker
from workers.runtime.composition import App
from workers.settings import Settings
from workers.storage import tables as t

Cli = Callable[..., Result]


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Bad input: exit code != 0, exactly one line on stderr, no traceback."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@dataclass
class Shop:
    """Commands dispatched through the real unit of work, as a worker would."""

    app: App
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, command: CommandBase) -> Outcome:
        outcome = handle(command, self.app.uow, self.app.context)
        self.outcomes.append(outcome)
        return outcome

    def ok(self, command: CommandBase) -> Outcome:
        outcome = self.run(command)
        assert outcome.status == "accepted", outcome
        return outcome

    def deliver(self, order_id: uuid.UUID) -> str:
        """Run the newest SendPaymentLink the outbox holds for the order; its raw token."""
        with self.app.engine.connect() as conn:
            payload = conn.execute(
                select(t.outbox.c.payload)
                .where(t.outbox.c.order_id == order_id, t.outbox.c.kind == "command")
                .order_by(t.outbox.c.id.desc())
                .limit(1)
            ).scalar_one()
        command = c.SendPaymentLink.model_validate(json.loads(payload)["args"][0])
        self.ok(command)
        return command.token

    def placed_order(self, **create: Any) -> tuple[uuid.UUID, str]:
        order_id = uuid.uuid4()
        self.ok(create_order(order_id, **create))
        token = self.deliver(order_id)
        self.ok(opened(token))
        self.ok(completed(token))
        return order_id, token

    def capture(self, order_id: uuid.UUID, amount: int) -> None:
        self.ok(merchant(c.CapturePayment, order_id, amount=amount))

    def refund(self, order_id: uuid.UUID, amount: int) -> None:
        self.ok(merchant(c.RefundPayment, order_id, amount=amount))


@dataclass
class SeededShop:
    shop: Shop
    sent: uuid.UUID  # link sent to anna@example.com, "PO-1001"
    placed: uuid.UUID  # by SMS, placed, part captured, part refunded, "INV-77"
    token: str


def make_shop(database_url: str, outbox_dir: Path, **settings: Any) -> Shop:
    """A shop on ``database_url``; ``settings`` by their variable names (providers, say)."""
    return Shop(App(Settings(DATABASE_URL=database_url, PAYLINK_OUTBOX_DIR=outbox_dir, **settings)))


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of GET http://127.0.0.1:port/path; (0, "") when nobody answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def declare_queues(broker_url: str, *queues: str) -> None:
    """Declare command queues (with .DQ and .XQ) exactly as the workers do."""
    broker = build_broker(Settings(BROKER_URL=broker_url))
    try:
        for queue in queues or ALL_QUEUES:
            broker.declare_queue(queue, ensure=True)
    finally:
        broker.close()


# ---- processes ---------------------------------------------------------------------

#: The repository root: processes under test run from there.
ROOT = Path(__file__).resolve().parents[2]
#: Generous: a loaded CI machine boots a Dramatiq worker pool slowly.
BOOT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + BOOT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            pytest.fail(f"timed out waiting for {what}; process output:\n{tail}")
        time.sleep(0.2)


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to the process alone, as Kubernetes stops a container; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)
