"""The page's publisher on the real broker: confirmed, routed as the checkout's own
broker user, refused when that user may not publish, and back after a cut."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator

import pika
import pytest

from messages import commands as c
from messages.routing import COMMANDS_EXCHANGE, ParseError, Queue, parse_message
from tests.services import require_rabbitmq
from workers.devtools.harness import create_vhost, delete_vhost, now
from workers.runtime.broker import declare_command_queues
from workers.web.publisher import BrokerPublisher, PublishFailed

pytestmark = pytest.mark.integration


@pytest.fixture
def vhost() -> Iterator[str]:
    require_rabbitmq()
    url = create_vhost("paylink-web")
    yield url
    delete_vhost(url)


def _opened() -> c.PaymentLinkOpened:
    return c.PaymentLinkOpened(command_id=uuid.uuid4(), issued_at=now(), token="t" * 43)


def _take(url: str) -> list[bytes]:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        bodies = []
        while True:
            method, _props, body = channel.basic_get(Queue.CHECKOUT, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)


def test_a_published_command_is_the_message_a_worker_parses(vhost: str) -> None:
    # Given the command queues, and the page's publisher
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        declare_command_queues(conn.channel(), quorum=False)
    publisher = BrokerPublisher(vhost)
    command = _opened()

    # When the page publishes an opening
    publisher.publish(command)
    publisher.close()

    # Then the checkout queue holds exactly the message the workers parse
    (body,) = _take(vhost)
    parsed = parse_message(body)
    assert not isinstance(parsed, ParseError), parsed
    assert parsed.command == command
    assert json.loads(body)["actor_name"] == "payment_link_opened"


def test_it_publishes_through_the_commands_exchange_as_its_broker_user(vhost: str) -> None:
    # Given the command queues, and a publisher connected as guest
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        declare_command_queues(conn.channel(), quorum=False)
    publisher = BrokerPublisher(vhost)

    # When it publishes
    publisher.publish(_opened())
    publisher.close()

    # Then the delivery came through paylink.commands, keyed by the command, signed by user
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        method, props, _body = conn.channel().basic_get(Queue.CHECKOUT, auto_ack=True)
    assert (method.exchange, method.routing_key) == (COMMANDS_EXCHANGE, "PaymentLinkOpened")
    assert props.user_id == "guest"


def test_a_command_the_broker_user_may_not_publish_is_refused(vhost: str) -> None:
    # Given a broker user like deploy's paylink-checkout, allowed only the checkout
    # commands on the commands exchange
    name = vhost.rsplit("/", 1)[1]
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        declare_command_queues(conn.channel(), quorum=False)
    user = f"checkout-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_user", user, "pw"], check=True, capture_output=True)
    try:
        subprocess.run(
            [*ctl, "set_permissions", "-p", name, user, "^$", "^paylink\\.commands$", "^$"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *ctl,
                "set_topic_permissions",
                "-p",
                name,
                user,
                COMMANDS_EXCHANGE,
                "^(PaymentLinkOpened|CheckoutCompleted)$",
                "^$",
            ],
            check=True,
            capture_output=True,
        )
        publisher = BrokerPublisher(vhost.replace("guest:guest@", f"{user}:pw@"))

        # When it publishes an opening (allowed) and a command it may not send
        publisher.publish(_opened())
        capture = c.CapturePayment(
            command_id=uuid.uuid4(),
            issued_at=now(),
            actor={"user_id": "x", "role": "Admin", "store_ids": ["s"]},
            order_id=uuid.uuid4(),
        )
        with pytest.raises(PublishFailed):
            publisher.publish(capture)
        publisher.publish(_opened())
        publisher.close()
    finally:
        subprocess.run([*ctl, "delete_user", user], check=False, capture_output=True)

    # Then the allowed commands arrived, and the refusal did not break the next publish
    assert len(_take(vhost)) == 2


def test_a_connection_the_broker_closed_is_opened_again(
    vhost: str, server_log: io.StringIO
) -> None:
    # Given a publisher whose connection the broker has since closed
    with pika.BlockingConnection(pika.URLParameters(vhost)) as conn:
        declare_command_queues(conn.channel(), quorum=False)
    publisher = BrokerPublisher(vhost)
    publisher.publish(_opened())
    name = vhost.rsplit("/", 1)[1]
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "--vhost", name, "test: idle cut"],
        check=True,
        capture_output=True,
    )

    # When the next command is published
    publisher.publish(_opened())
    publisher.close()

    # Then it went out on a new connection, and both commands are in the queue
    events = [json.loads(line)["event"] for line in server_log.getvalue().splitlines()]
    assert "broker connection lost; reconnecting" in events
    assert len(_take(vhost)) == 2


def test_a_command_no_queue_takes_is_refused_not_lost(vhost: str) -> None:
    # Given a broker where no worker ever declared the command queues
    publisher = BrokerPublisher(vhost)

    # When the page publishes, Then it is told (and tells the customer to retry)
    with pytest.raises(PublishFailed):
        publisher.publish(_opened())
    publisher.close()
