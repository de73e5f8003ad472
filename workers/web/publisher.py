"""Publishing the page's commands to RabbitMQ, as the hosted checkout's own identity.

The command's Dramatiq message (``messages.routing.command_bytes``) goes to the
commands exchange with routing key = command type and the AMQP ``user_id`` of the
broker user in ``BROKER_URL``, persistent, mandatory, confirmed. In ``deploy/`` that
user is ``paylink-checkout``, whose topic permissions allow only PaymentLinkOpened and
CheckoutCompleted. One connection is kept and shared under a lock (pika's connections
are not thread safe); a connection the broker closed while idle is opened again once
per publish.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

import pika
import structlog

from messages.common import CommandBase
from messages.routing import COMMANDS_EXCHANGE, command_bytes, route_for
from workers.runtime.amqp import connect
from workers.settings import first_broker_url

log = structlog.get_logger("paylink.web")

#: A customer waits on a payment's publish: fail fast and say "try again" rather than
#: hang (a reconnect is tried once, so at most twice this).
CONNECT_TIMEOUT_SECONDS = 3.0


class PublishFailed(Exception):
    """The broker did not confirm the command; the page says "try again"."""


class CommandPublisher(Protocol):
    def publish(self, command: CommandBase) -> None: ...


class BrokerPublisher:
    def __init__(self, broker_url: str) -> None:
        self._url = broker_url
        #: RabbitMQ checks it is the connection's user: the workers know who published.
        self._user_id = pika.URLParameters(first_broker_url(broker_url)).credentials.username
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None

    def publish(self, command: CommandBase) -> None:
        route = route_for(command)
        body = command_bytes(command)
        properties = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", user_id=self._user_id
        )
        with self._lock:
            for attempt in (1, 2):
                try:
                    channel = self._open()
                    channel.basic_publish(
                        COMMANDS_EXCHANGE, route.command_type, body, properties, mandatory=True
                    )
                    return
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    raise PublishFailed(f"{route.command_type}: {type(exc).__name__}") from None
                except pika.exceptions.ChannelClosedByBroker as exc:
                    self._drop()  # refused (permissions, user_id): retrying cannot help
                    raise PublishFailed(f"{route.command_type}: {exc.reply_text}") from None
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise PublishFailed(f"broker unreachable ({type(exc).__name__})") from None
                    log.info("broker connection lost; reconnecting", error=type(exc).__name__)

    def _open(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self._drop()
            self._connection = connect(self._url, timeout=CONNECT_TIMEOUT_SECONDS)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
