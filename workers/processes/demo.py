"""`paylink demo`: a realistic scenario published through RabbitMQ, as upstream would.

Configures a store, creates orders for email and SMS customers in three countries,
plays the customer (reads the link from the local file outbox, opens it, pays),
captures, refunds, cancels, adds a return fee, lets one link expire (when the link
TTL is short), then prints the order history and the link of one order left for a
person to pay on the hosted page (``paylink web``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika

from messages import commands as c
from messages.common import CommandBase
from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE, command_bytes, route_for
from workers.settings import Settings, first_broker_url

STORE = "demo-store"
ACTOR = {"user_id": "demo.merchant@portal", "role": "Admin", "store_ids": [STORE]}
#: Expiry is demonstrated only when links live this long or less (else it takes days).
MAX_DEMO_TTL_SECONDS = 120


def _line(name: str, ref: str, qty: int, price: int, tax: int = 2500, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "reference": ref,
        "quantity": qty,
        "unit_price": price,
        "tax_rate": tax,
        **kw,
    }


class Upstream:
    """Publishes commands and watches events, like an upstream system would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = pika.BlockingConnection(
            pika.URLParameters(first_broker_url(settings.broker_url))
        )
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        self.queue = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.queue, EVENTS_EXCHANGE, "#")
        self.events: list[dict[str, Any]] = []

    def wait_for_workers(self, timeout: float = 300) -> None:
        """Publish only once every command queue has a consumer (the pool is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                counts = [
                    self.ch.queue_declare(q, passive=True).method.consumer_count for q in ALL_QUEUES
                ]
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                self.ch = self.conn.channel()
                self.ch.confirm_delivery()
                counts = [0]
            if all(counts):
                return
            self.conn.sleep(0.5)
        raise TimeoutError(f"demo: no workers consuming after {timeout:.0f}s")

    def send(self, cls: type[CommandBase], **fields: Any) -> CommandBase:
        cmd = cls(command_id=uuid.uuid4(), issued_at=datetime.now(UTC), **fields)
        self.ch.basic_publish(
            "",
            route_for(cmd).queue_name,
            command_bytes(cmd),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        )
        return cmd

    def wait(
        self, match: Callable[[dict[str, Any]], bool], what: str, timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if match(event):
                    return event
            method, _props, body = self.ch.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.conn.sleep(0.1)
            else:
                self.events.append(json.loads(body))
        raise TimeoutError(f"demo: no {what} within {timeout:.0f}s (are the workers running?)")

    def outcome(self, cmd: CommandBase, expect: str) -> dict[str, Any]:
        event = self.wait(lambda e: e.get("command_id") == str(cmd.command_id), type(cmd).__name__)
        mark = "ok " if event["type"] == expect else "!! "
        detail = (
            f" {event.get('code')}: {event.get('message')}"
            if event["type"] == "order.rejected"
            else ""
        )
        print(f"  {mark}{type(cmd).__name__:<30} -> {event['type']}{detail}", flush=True)
        return event

    def token(self, order_id: uuid.UUID) -> str:
        sent = self.wait(
            lambda e: e["type"] == "link.sent" and e.get("order_id") == str(order_id), "link.sent"
        )
        for suffix in (".eml", ".json"):
            path = Path(self.settings.outbox_dir) / f"{sent['link_id']}{suffix}"
            if path.exists():
                found = re.search(r"/([A-Za-z0-9_\-]{40,})", path.read_text(errors="replace"))
                if found:
                    print(f"  ok customer received the link: {path}", flush=True)
                    return found.group(1)
        raise RuntimeError("demo: the demo plays the customer from the local file outbox")


def run_demo(settings: Settings) -> int:
    up = Upstream(settings)
    print("demo: waiting for the workers to consume", flush=True)
    up.wait_for_workers()
    print("demo: configuring the store", flush=True)
    up.outcome(
        up.send(
            c.ConfigureStore,
            actor=ACTOR,
            store_id=STORE,
            store_name="Nordic Shoes",
            terms_url="https://nordicshoes.example/terms",
            agreement_currencies=["SEK", "NOK", "EUR"],
        ),
        "store.configured",
    )

    def order(**kw: Any) -> uuid.UUID:
        order_id = uuid.uuid4()
        cmd = up.send(c.CreateOrder, actor=ACTOR, order_id=order_id, store_id=STORE, **kw)
        up.outcome(cmd, "order.created")
        return order_id

    print("demo: email order (SE), opened, paid, captured in two parts, part refunded", flush=True)
    se = order(
        customer={"email": "anna.svensson@example.se", "name": "Anna Svensson"},
        purchase_country="SE",
        merchant_reference1="PO-1001",
        order_lines=[
            _line("Trail runner", "TR-42", 1, 129_900),
            _line("Socks", "SK-3", 2, 9_900),
            _line("Welcome", "DISC-10", 1, -10_000, type="discount"),
        ],
    )
    token = up.token(se)
    up.outcome(up.send(c.PaymentLinkOpened, token=token), "link.opened")
    up.outcome(
        up.send(
            c.CheckoutCompleted,
            token=token,
            authorization_id="auth-se-1",
            authorized_amount=139_700,
            currency="SEK",
        ),
        "order.completed",
    )
    up.outcome(
        up.send(c.CapturePayment, actor=ACTOR, order_id=se, amount=100_000), "payment.captured"
    )
    up.outcome(up.send(c.CapturePayment, actor=ACTOR, order_id=se), "payment.captured")
    up.outcome(
        up.send(c.RefundPayment, actor=ACTOR, order_id=se, amount=19_800), "payment.refunded"
    )

    print("demo: SMS order (NO), paid, then cancelled", flush=True)
    no = order(
        customer={"phone": "+4791234567"},
        purchase_country="NO",
        merchant_reference1="PO-1002",
        order_lines=[_line("Rain jacket", "RJ-1", 1, 249_900)],
    )
    token = up.token(no)
    up.outcome(
        up.send(
            c.CheckoutCompleted,
            token=token,
            authorization_id="auth-no-1",
            authorized_amount=249_900,
            currency="NOK",
        ),
        "order.completed",
    )
    up.outcome(up.send(c.CancelOrder, actor=ACTOR, order_id=no), "order.cancelled")

    print("demo: email order (FI), auto-captured, returned with a return fee withheld", flush=True)
    fi = order(
        customer={"email": "matti@example.fi"},
        purchase_country="FI",
        merchant_reference1="PO-1003",
        auto_capture=True,
        order_lines=[_line("Sandals", "SA-9", 1, 5_990, tax=2550)],
    )
    token = up.token(fi)
    up.outcome(
        up.send(
            c.CheckoutCompleted,
            token=token,
            authorization_id="auth-fi-1",
            authorized_amount=5_990,
            currency="EUR",
        ),
        "order.completed",
    )
    up.wait(
        lambda e: e["type"] == "payment.captured" and e.get("order_id") == str(fi), "auto-capture"
    )
    up.outcome(
        # The customer sends everything back; a 4.95 return fee is withheld.
        up.send(
            c.AddReturnFee,
            actor=ACTOR,
            order_id=fi,
            amount=495,
            tax_rate=2550,
            refund_amount=5_990,
        ),
        "payment.refunded",  # then order.return_fee_added, the fee withheld
    )

    print("demo: a currency outside the agreement is refused", flush=True)
    up.outcome(
        up.send(
            c.CreateOrder,
            actor=ACTOR,
            order_id=uuid.uuid4(),
            store_id=STORE,
            customer={"email": "x@example.ch"},
            purchase_country="CH",
            merchant_reference1="PO-1004",
            order_lines=[_line("Cap", "CP-1", 1, 2_500, tax=810)],
        ),
        "order.rejected",
    )

    ttl = settings.link_ttl_seconds
    yours: uuid.UUID | None = None
    if ttl > MAX_DEMO_TTL_SECONDS:  # `make demo` stops the service and its links lapse
        print("demo: an order left for you to pay in the browser (paylink web)", flush=True)
        yours = order(
            customer={"email": "you@example.se", "name": "You"},
            purchase_country="SE",
            merchant_reference1="PO-1006",
            order_lines=[
                _line("Hiking boot", "HB-7", 1, 189_900),
                _line("Shipping", "SHIP", 1, 4_900, type="shipping_fee"),
            ],
        )
        link = f"{settings.checkout_base_url.rstrip('/')}/{up.token(yours)}"

    if ttl <= MAX_DEMO_TTL_SECONDS:
        print(f"demo: a link nobody opens expires after {ttl}s", flush=True)
        lapsing = order(
            customer={"email": "late@example.se"},
            purchase_country="SE",
            merchant_reference1="PO-1005",
            order_lines=[_line("Gift card", "GC-1", 1, 50_000, tax=0)],
        )
        up.wait(
            lambda e: e["type"] == "link.expired" and e.get("order_id") == str(lapsing),
            "link.expired",
            timeout=ttl + 60,
        )
        print("  ok link.expired", flush=True)
    else:
        print(
            f"demo: link TTL is {ttl}s; run `make demo` to watch a link expire (20 s TTL)",
            flush=True,
        )
    up.conn.close()
    print("\ndemo: order history (paylink orders list --store demo-store)", flush=True)
    code = subprocess.call(
        [sys.executable, "-m", "workers.cli", "orders", "list", "--store", STORE]
    )
    if yours is not None:
        print(f"\ndemo: PO-1006 waits for you: open {link}", flush=True)
        print(f"      pay it (sandbox: approve), then `paylink orders show {yours}`", flush=True)
    return code
