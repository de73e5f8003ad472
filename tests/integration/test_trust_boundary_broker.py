"""deploy/rabbitmq/definitions.json imported into a scratch vhost of the real broker.

The users are renamed (users are the broker's, not the vhost's) and given passwords;
then each publishes as an upstream or the hosted checkout would, and RabbitMQ itself
decides: what its permissions and topic permissions refuse closes the channel.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from messages.routing import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, Queue, event_routing_key
from tests.services import require_rabbitmq
from workers.devtools.services import rabbitmq_url

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.json"
PASSWORD = "scratch-password"


@dataclass(frozen=True)
class Scratch:
    vhost: str
    users: dict[str, str]  # name in the definitions -> name on this broker

    def connect(self, user: str) -> pika.BlockingConnection:
        base = rabbitmq_url().split("@", 1)[1].rsplit("/", 1)[0]
        url = f"amqp://{self.users[user]}:{PASSWORD}@{base}/{self.vhost}"
        return pika.BlockingConnection(pika.URLParameters(url))


def _ctl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, input=stdin, text=True
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    """One import for the module: rabbitmqctl takes a second or two per call."""
    require_rabbitmq()
    tag = uuid.uuid4().hex[:8]
    definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    vhost = f"paylink-defs-{tag}"
    users = {u["name"]: f"{u['name']}-{tag}" for u in definitions["users"]}
    text = json.dumps(definitions).replace('"paylink"', json.dumps(vhost))
    for name, renamed in users.items():
        text = text.replace(json.dumps(name), json.dumps(renamed))
    _ctl("import_definitions", stdin=text)  # on stdin: the server may not read our files
    for renamed in users.values():
        _ctl("change_password", renamed, PASSWORD)
    try:
        yield Scratch(vhost, users)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
        for renamed in users.values():
            subprocess.run(["rabbitmqctl", "-q", "delete_user", renamed], capture_output=True)


def _publish(
    scratch: Scratch, user: str, exchange: str, routing_key: str, *, user_id: str | None = None
) -> None:
    """Publish with confirms as ``user``; raises what RabbitMQ answers to a refusal."""
    with scratch.connect(user) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            b"{}",
            pika.BasicProperties(user_id=user_id or scratch.users[user]),
            mandatory=True,
        )


def _depth(scratch: Scratch, queue: str) -> int:
    with scratch.connect("paylink-admin") as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def test_an_upstream_publishes_merchant_commands_to_the_commands_exchange(
    scratch: Scratch,
) -> None:
    before = _depth(scratch, Queue.CREATE_ORDER), _depth(scratch, Queue.ORDER_MANAGEMENT)

    _publish(scratch, "paylink-upstream", COMMANDS_EXCHANGE, "CreateOrder")
    _publish(scratch, "paylink-upstream", COMMANDS_EXCHANGE, "CapturePayment")

    after = _depth(scratch, Queue.CREATE_ORDER), _depth(scratch, Queue.ORDER_MANAGEMENT)
    assert after == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(
    ("user", "exchange", "routing_key"),
    [
        ("paylink-upstream", COMMANDS_EXCHANGE, "SendPaymentLink"),
        ("paylink-upstream", COMMANDS_EXCHANGE, "ExpireAuthorization"),
        ("paylink-upstream", COMMANDS_EXCHANGE, "CheckoutCompleted"),
        ("paylink-upstream", "", Queue.SEND_LINK),
        ("paylink-upstream", "", f"{Queue.ORDER_MANAGEMENT}.DQ"),
        ("paylink-upstream", "", f"{Queue.SEND_LINK}.XQ"),
        ("paylink-checkout", COMMANDS_EXCHANGE, "CreateOrder"),
        ("paylink-checkout", "", Queue.CHECKOUT),
    ],
    ids=[
        "upstream_internal_send",
        "upstream_internal_expiry",
        "upstream_checkout",
        "upstream_default_exchange",
        "upstream_delay_queue",
        "upstream_dead_letters",
        "checkout_merchant_command",
        "checkout_default_exchange",
    ],
)
def test_what_a_publisher_may_not_send_is_refused_by_the_broker(
    scratch: Scratch, user: str, exchange: str, routing_key: str
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        _publish(scratch, user, exchange, routing_key)

    assert refused.value.reply_code == 403  # ACCESS_REFUSED


def test_the_hosted_checkout_publishes_checkout_commands(scratch: Scratch) -> None:
    before = _depth(scratch, Queue.CHECKOUT)

    _publish(scratch, "paylink-checkout", COMMANDS_EXCHANGE, "PaymentLinkOpened")

    assert _depth(scratch, Queue.CHECKOUT) == before + 1


def test_a_publisher_cannot_claim_another_users_identity(scratch: Scratch) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        _publish(
            scratch,
            "paylink-upstream",
            COMMANDS_EXCHANGE,
            "CreateOrder",
            user_id=scratch.users["paylink-checkout"],
        )

    assert refused.value.reply_code == 406  # PRECONDITION_FAILED: user_id is not yours


def _event(scratch: Scratch, store_id: str | None, event_type: str) -> None:
    """An event as the relay publishes it: as paylink-worker, routing key by store, not
    mandatory (an event nobody binds is dropped, as on the real exchange)."""
    with scratch.connect("paylink-worker") as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(EVENTS_EXCHANGE, event_routing_key(event_type, store_id), b"{}")


def test_an_upstream_receives_only_the_events_of_its_stores(scratch: Scratch) -> None:
    # Given the upstream's queue, bound by the operator to its store's events
    with scratch.connect("paylink-upstream") as conn:
        channel = conn.channel()
        channel.queue_purge("upstream.events")
        # When paylink publishes events of its store, of another store, of a store whose
        # id starts like its own, and of no store
        for store in ("example-store", "other-store", "example-store.annex", None):
            _event(scratch, store, "order.created")
        # Then it reads its own store's event, and only that one
        bodies = []
        while (got := channel.basic_get("upstream.events", auto_ack=True))[0] is not None:
            bodies.append(got[0].routing_key)
    assert bodies == ["example-store.order.created"]


def test_an_upstream_cannot_bind_itself_to_every_stores_events(scratch: Scratch) -> None:
    with scratch.connect("paylink-upstream") as conn:
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_bind("upstream.events", EVENTS_EXCHANGE, "#")
    assert refused.value.reply_code == 403  # ACCESS_REFUSED
