"""The Dramatiq broker on RabbitMQ, with paylink's dead-lettering and middleware.

Dramatiq declares each command queue with ``<queue>.DQ`` (retry delays, seconds to
minutes, never the 48 h expiry) and ``<queue>.XQ`` (dead letters) beside it; paylink's
broker also declares the commands exchange and binds each queue by its commands' types.
What arrives is checked by the consumer before Dramatiq acts on it (``workers.runtime.consumer``).
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.common import xq_name
from dramatiq.message import Message
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.middleware.prometheus import Prometheus
from pika.adapters.blocking_connection import BlockingChannel

from messages.routing import ALL_QUEUES, COMMANDS_EXCHANGE, PUBLISHED_ROUTES
from workers.observability.redaction import known_values, personal_values, redact
from workers.runtime.consumer import MAX_BACKOFF_MS, MIN_BACKOFF_MS, PaylinkConsumer
from workers.runtime.dramatiq_internals import DeclaringBroker
from workers.settings import DEFAULT_MAX_MESSAGE_BYTES, Settings

#: Longest an actor may run; deploy/ grace periods are longer than this.
ACTOR_TIME_LIMIT_MS = 60_000


def queue_arguments(queue_name: str, *, quorum: bool, delivery_limit: int = 20) -> dict[str, Any]:
    """Arguments of a command queue (and its .DQ), identical for every declarer."""
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": xq_name(queue_name),
    }
    if quorum:
        arguments["x-queue-type"] = "quorum"
        arguments["x-delivery-limit"] = delivery_limit
    return arguments


#: Arguments of every ``.XQ`` dead-letter queue (Dramatiq's: keep dead letters 7 days).
XQ_ARGUMENTS: dict[str, Any] = {"x-message-ttl": DEAD_MESSAGE_TTL}


class Redaction(dramatiq.Middleware):
    """While a message is processed its personal values are masked wherever they appear
    (``workers.observability.redaction.known_values``): in Dramatiq's error lines and tracebacks, a
    database error quoting a row, a provider's text. The traceback Dramatiq's retries
    store in the message (and so in ``.DQ`` and ``.XQ``) is redacted before it is sent.

    First in the middleware list: its ``after_`` hooks run last, after the retry that
    stores the traceback.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        args = message.args
        known_values.set(personal_values(args[0]) if args else ())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        known_values.set(())

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        known_values.set(())

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int) -> None:
        traceback = message.options.get("traceback")
        if isinstance(traceback, str):
            message.options["traceback"] = redact(traceback)


class PaylinkBroker(DeclaringBroker):
    """RabbitmqBroker whose consumers dead-letter undecodable bodies with a reason, and
    bodies over ``max_message_bytes`` before reading them.

    With ``quorum=True`` queues are declared as quorum queues with a delivery limit,
    matching deploy/rabbitmq/definitions.json (a cluster's production setting).
    """

    def __init__(
        self,
        *,
        quorum: bool = False,
        delivery_limit: int = 20,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        **kwargs: Any,  # Any: RabbitmqBroker's own keywords, passed through
    ) -> None:
        super().__init__(**kwargs)
        self.quorum = quorum
        self.delivery_limit = delivery_limit
        self.max_message_bytes = max_message_bytes

    @property
    def consumer_class(self) -> type[PaylinkConsumer]:
        return PaylinkConsumer

    def arguments_for(self, queue_name: str) -> dict[str, Any]:
        return queue_arguments(queue_name, quorum=self.quorum, delivery_limit=self.delivery_limit)

    def declared(self, queue_name: str) -> None:
        declare_commands_exchange(self.channel, (queue_name,))


def build_broker(settings: Settings, *, prometheus: bool = False) -> PaylinkBroker:
    middleware: list[dramatiq.Middleware] = [
        Redaction(),
        AgeLimit(),
        TimeLimit(time_limit=ACTOR_TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=MIN_BACKOFF_MS,
            max_backoff=MAX_BACKOFF_MS,
        ),
        CurrentMessage(),
    ]
    if prometheus:
        middleware.insert(1, Prometheus())
    return PaylinkBroker(
        url=settings.broker_url,
        confirm_delivery=True,
        middleware=middleware,
        quorum=settings.quorum_queues,
        max_message_bytes=settings.max_message_bytes,
    )


def declare_command_queues(channel: BlockingChannel, *, quorum: bool) -> None:
    """Declare every command queue with its .DQ and .XQ exactly as workers do (pika).

    Upstream publishers use mandatory publishes: the queues must exist before the
    first worker starts (deploy/ declares them through the RabbitMQ definitions).
    """
    for queue in ALL_QUEUES:
        args = queue_arguments(queue, quorum=quorum)
        channel.queue_declare(queue, durable=True, arguments=args)
        channel.queue_declare(f"{queue}.DQ", durable=True, arguments=args)
        channel.queue_declare(xq_name(queue), durable=True, arguments=XQ_ARGUMENTS)
    declare_commands_exchange(channel, ALL_QUEUES)


def declare_commands_exchange(channel: BlockingChannel, queues: tuple[str, ...]) -> None:
    """The commands exchange, and a binding per published command of ``queues``
    (routing key = command type; internal commands have none)."""
    channel.exchange_declare(COMMANDS_EXCHANGE, "topic", durable=True)
    for route in PUBLISHED_ROUTES:
        if route.queue_name in queues:
            channel.queue_bind(route.queue_name, COMMANDS_EXCHANGE, route.command_type)
