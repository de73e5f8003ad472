"""The per-line money rules through the real SQL storage (SQLite and PostgreSQL),
concurrent line captures from two processes, and migration 0004's backfill."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select

from domain.errors import TransientError
from messages import commands as c
from tests.integration.commands import LINES, merchant
from tests.integration.test_storage import Env
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


def test_migration_0004_turns_line_references_into_shares(tmp_path: Any) -> None:
    # Given: a database at 0003 with a line capture, an amount-only refund and a return fee
    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, "0003")
    engine = create_engine(url)
    oid = uuid.uuid4()
    now = datetime.now(UTC)
    order_row = {c.name: None for c in t.orders.columns}
    order_row.update(
        order_id=oid,
        store_id="s",
        created_by="u",
        created_at=now,
        channel="email",
        purchase_country="SE",
        currency="SEK",
        merchant_reference1="r",
        auto_capture=False,
        link_status="COMPLETED",
        status="PART_CAPTURED",
        order_amount=110_000,
        order_tax_amount=22_000,
        version=1,
        updated_at=now,
    )
    with engine.begin() as conn:
        conn.execute(insert(t.orders), [order_row])
        conn.execute(
            insert(t.order_lines),
            [
                {
                    "order_id": oid,
                    "position": i,
                    "name": ln["name"],
                    "reference": ln["reference"],
                    "type": "physical",
                    "quantity": ln["quantity"],
                    "unit_price": ln["unit_price"],
                    "tax_rate": 2500,
                    "total_discount_amount": 0,
                    "total_amount": ln["quantity"] * ln["unit_price"],
                    "total_tax_amount": ln["quantity"] * ln["unit_price"] // 5,
                }
                for i, ln in enumerate([SHOE, SOCK])
            ],
        )
        for seq, (kind, amount, refs) in enumerate(
            [("capture", 100_000, ["SHOE-42"]), ("refund", 5_000, []), ("capture", 1, ["SOCK-1"])]
        ):
            conn.exec_driver_sql(
                "INSERT INTO ledger_entries (entry_id, order_id, seq, kind, amount, at, "
                "line_references) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, oid.hex, seq, kind, amount, now, f"{refs}".replace("'", '"')),
            )
    # When
    upgrade(url)
    # Then: a line taken whole becomes its share; an amount that does not add up stays
    # amount-only; nothing is lost
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.ledger_entries.c.amount, t.ledger_entries.c.lines).order_by(
                t.ledger_entries.c.seq
            )
        ).all()
    assert rows == [
        (
            100_000,
            [{"reference": "SHOE-42", "quantity": 2, "amount": 100_000, "tax_amount": 20_000}],
        ),
        (5_000, []),
        (1, []),
    ]
