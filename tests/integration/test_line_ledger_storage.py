"""The per-line money rules through the real SQL storage (SQLite and PostgreSQL),
concurrent line captures from two processes, and migration 0004's backfill."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Uuid,
    column,
    create_engine,
    insert,
    select,
    table,
)

from domain.errors import TransientError
from domain.status import PaymentStatus
from messages import commands as c
from tests.integration.test_storage import Env
from tests.services import require_postgres
from workers.devtools.commands import LINES, merchant
from workers.devtools.harness import create_database, drop_database
from workers.storage import tables as t
from workers.storage.migrate import upgrade

pytestmark = pytest.mark.integration

SHOE = LINES[0]  # 2 × 500.00
SOCK = LINES[1]  # 1 × 100.00


def _units(line: dict[str, Any], quantity: int) -> dict[str, Any]:
    return {**line, "quantity": quantity}


def test_line_capture_and_refund_are_stored_per_line_and_bounded(database_url: str) -> None:
    # Given: a completed order
    env = Env(database_url)
    order_id = env.ready_order()
    # When: both shoes are captured by line; the sock never is
    capture = env.run(merchant(c.CapturePayment, order_id, order_lines=[_units(SHOE, 2)]))
    refund_sock = env.run(merchant(c.RefundPayment, order_id, order_lines=[_units(SOCK, 1)]))
    refund_shoe = env.run(merchant(c.RefundPayment, order_id, order_lines=[_units(SHOE, 1)]))
    too_many = env.run(merchant(c.RefundPayment, order_id, order_lines=[_units(SHOE, 2)]))
    # Then: refunds stay within what was captured of each line
    assert capture.status == refund_shoe.status == "accepted"
    assert (refund_sock.code, too_many.code) == (
        "LINE_REFUND_EXCEEDS_CAPTURED",
        "LINE_REFUND_EXCEEDS_CAPTURED",
    )
    with env.uow() as uow:
        order = uow.orders.get(order_id)
    assert order is not None
    pos = order.line_positions["SHOE-42"]
    assert (pos.captured.quantity, pos.captured.amount) == (2, 100_000)
    assert (pos.refunded.quantity, pos.refunded.amount) == (1, 50_000)
    with env.engine.connect() as conn:
        stored = conn.execute(
            select(t.ledger_entries.c.kind, t.ledger_entries.c.lines)
            .where(t.ledger_entries.c.order_id == order_id)
            .order_by(t.ledger_entries.c.seq)
        ).all()
    assert [(k, lines) for k, lines in stored if k == "capture"] == [
        (
            "capture",
            [{"reference": "SHOE-42", "quantity": 2, "amount": 100_000, "tax_amount": 20_000}],
        )
    ]


def _capture_shoes(database_url: str, order_id: str, start: Any, results: Any) -> None:
    """One worker process: both shoes, by line, once the other process is ready too."""
    env = Env(database_url)
    start.wait(10)
    cmd = merchant(c.CapturePayment, uuid.UUID(order_id), order_lines=[_units(SHOE, 2)])
    for _ in range(20):
        try:
            outcome = env.run(cmd)
        except TransientError:  # a lock or serialization conflict: retried, as the runtime does
            continue
        results.put(outcome.code or outcome.status)
        return
    results.put("gave up")


def test_two_processes_capturing_the_same_line_capture_it_once(pg_database: str) -> None:
    database_url = pg_database
    env = Env(database_url)
    spawn = multiprocessing.get_context("spawn")
    for _ in range(3):
        # Given: a completed order, two processes about to capture its shoes
        order_id = env.ready_order()
        start, results = spawn.Event(), spawn.Queue()
        workers = [
            spawn.Process(target=_capture_shoes, args=(database_url, str(order_id), start, results))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        # When: both go at once
        start.set()
        for w in workers:
            w.join(60)
        # Then: one captured the line, the other found nothing left of it
        answers = sorted(results.get(timeout=5) for _ in workers)
        assert answers == ["LINE_CAPTURE_EXCEEDS_QUANTITY", "accepted"]
        with env.uow() as uow:
            order = uow.orders.get(order_id)
        assert order is not None
        assert order.line_positions["SHOE-42"].captured.quantity == 2
        assert order.balance.captured == 100_000


#: ledger_entries as revision 0003 has it.
_LEGACY_ENTRIES = table(
    "ledger_entries",
    column("entry_id", Uuid()),
    column("order_id", Uuid()),
    column("seq", Integer()),
    column("kind", String()),
    column("amount", BigInteger()),
    column("at", t.UtcDateTime()),
    column("reason", String()),
    column("line_references", JSON()),
)


class LegacyOrder:
    """An order as the code before revision 0004 stored it, written at 0003."""

    def __init__(self, engine: Any, lines: list[dict[str, Any]], order_amount: int) -> None:
        self.engine, self.order_id, self.seq = engine, uuid.uuid4(), 0
        now = datetime.now(UTC)
        row: dict[str, Any] = {column.name: None for column in t.orders.columns}
        row.update(
            order_id=self.order_id,
            store_id="store-it",
            created_by="u",
            created_at=now,
            customer_email="anna@example.com",
            channel="email",
            purchase_country="SE",
            currency="SEK",
            merchant_reference1="r",
            auto_capture=False,
            link_status="COMPLETED",
            status="AUTHORIZED",
            order_amount=order_amount,
            order_tax_amount=order_amount // 5,
            reservation_expires_at=now,
            version=1,
            updated_at=now,
        )
        with engine.begin() as conn:
            conn.execute(insert(t.orders), [row])
            conn.execute(
                insert(t.order_lines),
                [
                    {
                        "order_id": self.order_id,
                        "position": i,
                        "name": ln["name"],
                        "reference": ln["reference"],
                        "type": ln.get("type", "physical"),
                        "quantity": ln["quantity"],
                        "unit_price": ln["unit_price"],
                        "tax_rate": 2500,
                        "total_discount_amount": 0,
                        "total_amount": ln["quantity"] * ln["unit_price"],
                        "total_tax_amount": ln["quantity"] * ln["unit_price"] // 5,
                    }
                    for i, ln in enumerate(lines)
                ],
            )

    def entry(
        self, kind: str, amount: int, refs: Sequence[str] = (), reason: str | None = None
    ) -> LegacyOrder:
        with self.engine.begin() as conn:
            conn.execute(
                insert(_LEGACY_ENTRIES).values(
                    entry_id=uuid.uuid4(),
                    order_id=self.order_id,
                    seq=self.seq,
                    kind=kind,
                    amount=amount,
                    at=datetime.now(UTC),
                    reason=reason,
                    line_references=list(refs),
                )
            )
        self.seq += 1
        return self


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at_0003(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        require_postgres()
        url = create_database("paylink_0004", "0003")
    if request.param == "sqlite":
        upgrade(url, "0003")
    yield url
    if request.param == "postgresql":
        drop_database(url)


def test_migration_0004_keeps_every_legacy_order_movable(database_at_0003: str) -> None:
    # Given: a database at 0003 with the histories the old model allowed
    url = database_at_0003
    engine = create_engine(url)
    shoe_sock = [SHOE, SOCK]  # 1000.00 + 100.00
    # a line capture that adds up, an amount-only refund, a capture that did not add up
    lines_ok = LegacyOrder(engine, shoe_sock, 110_000).entry("authorization", 110_000)
    lines_ok.entry("capture", 100_000, ["SHOE-42"]).entry("refund", 5_000)
    lines_ok.entry("capture", 1, ["SOCK-1"])
    # an edit from 1100.00 down to 1000.00 (the old code wrote no ledger entry)
    edited = LegacyOrder(engine, [SHOE], 100_000).entry("authorization", 110_000)
    # a return fee: an extra return_fee line, captured on top
    fee_line = {
        "name": "Return fee",
        "reference": "return-fee",
        "quantity": 1,
        "unit_price": 5_000,
        "type": "return_fee",
    }
    fee = LegacyOrder(engine, [*shoe_sock, fee_line], 115_000).entry("authorization", 110_000)
    fee.entry("capture", 110_000).entry("return_fee", 5_000, ["return-fee"])
    # a refund of a line never captured by line (the old code allowed it)
    bad = LegacyOrder(engine, shoe_sock, 110_000).entry("authorization", 110_000)
    bad.entry("capture", 100_000, ["SHOE-42"]).entry("refund", 10_000, ["SOCK-1"])
    # When
    upgrade(url)
    # Then: shares where the old history adds up, amount-only where it does not
    with engine.connect() as conn:
        stored = conn.execute(
            select(t.ledger_entries.c.kind, t.ledger_entries.c.amount, t.ledger_entries.c.lines)
            .where(t.ledger_entries.c.order_id == lines_ok.order_id)
            .order_by(t.ledger_entries.c.seq)
        ).all()
    shoe_share = {"reference": "SHOE-42", "quantity": 2, "amount": 100_000, "tax_amount": 20_000}
    assert stored == [
        ("authorization", 110_000, []),
        ("capture", 100_000, [shoe_share]),
        ("refund", 5_000, []),
        ("capture", 1, []),
    ]
    # and every order loads, holds its invariants and can still move its money
    env = Env(url)
    moves = {
        lines_ok.order_id: [
            merchant(c.RefundPayment, lines_ok.order_id, order_lines=[_units(SHOE, 1)])
        ],
        edited.order_id: [merchant(c.CapturePayment, edited.order_id, amount=100_000)],
        fee.order_id: [merchant(c.RefundPayment, fee.order_id, amount=115_000)],
        bad.order_id: [merchant(c.RefundPayment, bad.order_id, amount=90_000)],
    }
    for order_id, commands in moves.items():
        for cmd in commands:
            outcome = env.run(cmd)
            assert outcome.status == "accepted", (order_id, outcome)
    with env.uow() as uow:
        edited_order, fee_order = uow.orders.get(edited.order_id), uow.orders.get(fee.order_id)
        assert edited_order is not None
        assert fee_order is not None
        b = edited_order.balance
        assert (b.authorized, b.reduced, b.captured) == (110_000, 10_000, 100_000)
        assert fee_order.payment_status is PaymentStatus.REFUNDED
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(t.orders.c.order_id, t.orders.c.status)).all())
    assert statuses[edited.order_id] == "CAPTURED"
