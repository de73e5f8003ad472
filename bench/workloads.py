"""What the bench sends: commands as raw Dramatiq bytes, and orders inserted in bulk."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.lines import OrderLine
from messages import commands as c
from messages.common import LineType
from messages.routing import command_bytes, encode_command

STORE = "store-bench"
ADMIN = {"user_id": "bench-admin", "role": "Admin", "store_ids": [STORE]}
# the same realistic order the integration tests use
from workers.devtools.commands import LINES, ORDER_AMOUNT  # noqa: E402


def now() -> datetime:
    return datetime.now(UTC)


def configure_store() -> bytes:
    cmd = c.ConfigureStore(
        command_id=uuid.uuid4(),
        issued_at=now(),
        actor=ADMIN,
        store_id=STORE,
        store_name="Bench Shoes",
        terms_url="https://shoes.example/terms",
        agreement_currencies=["SEK", "EUR"],
    )
    return command_bytes(cmd)


def create_order_body(order_id: uuid.UUID, n: int) -> bytes:
    """A CreateOrder as an upstream system sends it (validated once, here)."""
    cmd = c.CreateOrder(
        command_id=uuid.uuid4(),
        issued_at=now(),
        actor=ADMIN,
        order_id=order_id,
        store_id=STORE,
        customer={"email": f"customer{n}@example.com"},
        purchase_country="SE",
        merchant_reference1=f"BENCH-{n}",
        order_lines=LINES,
    )
    return command_bytes(cmd)


def restamp(body: bytes) -> bytes:
    """The same message, timestamped now (Dramatiq's AgeLimit reads the timestamp)."""
    data = json.loads(body)
    data["message_timestamp"] = int(time.time() * 1000)
    return json.dumps(data, separators=(",", ":")).encode()


def floor_body(actor_name: str, queue_name: str, n: int) -> bytes:
    """A floor message carrying a CreateOrder-sized argument."""
    data = json.loads(create_order_body(uuid.uuid4(), n))
    data.update(actor_name=actor_name, queue_name=queue_name)
    return json.dumps(data, separators=(",", ":")).encode()


def checkout_bodies(token: str) -> tuple[bytes, bytes]:
    opened = c.PaymentLinkOpened(command_id=uuid.uuid4(), issued_at=now(), token=token)
    completed = c.CheckoutCompleted(
        command_id=uuid.uuid4(),
        issued_at=now(),
        token=token,
        authorization_id=f"auth-{uuid.uuid4().hex[:12]}",
        authorized_amount=ORDER_AMOUNT,
        currency="SEK",
    )
    return command_bytes(opened), command_bytes(completed)


def merchant_body(cls: type[c.CommandBase], order_id: uuid.UUID, **kw: Any) -> bytes:
    cmd = cls(command_id=uuid.uuid4(), issued_at=now(), actor=ADMIN, order_id=order_id, **kw)
    return command_bytes(cmd)


def queue_of(body: bytes) -> str:
    return str(json.loads(body)["queue_name"])


# ---- orders inserted in bulk, as paylink itself would have written them ----------------

#: One line, priced by the domain so totals and tax agree with what paylink computes.
BULK_LINE = OrderLine.create(
    name="Bench item",
    reference="BENCH-1",
    type=LineType.PHYSICAL,
    quantity=1,
    unit_price=10_000,
    tax_rate=2500,
)


def insert_store_sql() -> str:
    return (
        "INSERT INTO stores (store_id, name, terms_url, agreement_currencies, updated_at) "
        f"VALUES ('{STORE}', 'Bench Shoes', 'https://shoes.example/terms', "
        '\'["SEK", "EUR"]\', now()) ON CONFLICT (store_id) DO NOTHING'
    )


def bulk_orders_sql() -> list[str]:
    """Statements inserting ``:n`` orders with a live, sent link expiring at ``:expires``.

    Exactly the rows create-order + send-link leave: order CREATED with its current link
    and ``link_due_at`` (the scheduler's deadline), one order line, the link, the
    notification record SENT. Parameters: ``n``, ``created``, ``expires``, ``tag``.
    """
    ln = BULK_LINE
    return [
        "CREATE TEMP TABLE IF NOT EXISTS bench_gen (order_id uuid, link_id uuid, n int)",
        "TRUNCATE bench_gen",
        "INSERT INTO bench_gen SELECT gen_random_uuid(), gen_random_uuid(), g "
        "FROM generate_series(1, :n) AS g",
        "INSERT INTO orders (order_id, store_id, created_by, created_at, customer_email, "
        "channel, purchase_country, currency, merchant_reference1, auto_capture, link_status, "
        "status, order_amount, order_tax_amount, link_expires_at, current_link_id, link_due_at, "
        "version, updated_at) "
        f"SELECT order_id, '{STORE}', 'bench-admin', :created, 'customer' || n || '@example.com', "
        "'email', 'SE', 'SEK', :tag || n, false, 'CREATED', 'CREATED', "
        f"{ln.total_amount}, {ln.total_tax_amount}, :expires, link_id, :expires, 1, :created "
        "FROM bench_gen",
        "INSERT INTO order_lines (order_id, position, name, reference, type, quantity, "
        "unit_price, tax_rate, total_discount_amount, total_amount, total_tax_amount) "
        f"SELECT order_id, 0, '{ln.name}', '{ln.reference}', '{ln.type.value}', {ln.quantity}, "
        f"{ln.unit_price}, {ln.tax_rate}, {ln.total_discount_amount}, {ln.total_amount}, "
        f"{ln.total_tax_amount} FROM bench_gen",
        "INSERT INTO links (link_id, order_id, seq, token_hash, created_at, expires_at, "
        "delivery, superseded) "
        "SELECT link_id, order_id, 0, encode(sha256(convert_to(link_id::text, 'UTF8')), 'hex'), "
        ":created, :expires, 'sent', false FROM bench_gen",
        "INSERT INTO notifications (link_id, order_id, channel, state, attempts, "
        "uncertain_attempts, provider, provider_message_id, updated_at) "
        "SELECT link_id, order_id, 'email', 'sent', 1, 0, 'local', link_id::text || '.eml', "
        ":created FROM bench_gen",
    ]


def bulk_times(*, due: bool, ttl: timedelta = timedelta(hours=48)) -> tuple[datetime, datetime]:
    """(created, expires): links created 48 h ago (due now) or just now (due in 48 h)."""
    t = now()
    created = t - ttl - timedelta(seconds=1) if due else t
    return created, created + ttl


__all__ = ["encode_command"]
