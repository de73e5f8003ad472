"""The Dramatiq broker on RabbitMQ, with paylink's dead-lettering and middleware.

Dramatiq declares each command queue with ``<queue>.DQ`` (retry delays, seconds to
minutes, never the 48 h expiry) and ``<queue>.XQ`` (dead letters) beside it.
A body that is not even a Dramatiq message is moved to ``<queue>.XQ`` with the
``x-paylink-reason`` header instead of being silently dropped.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import (
    DEAD_MESSAGE_TTL,
    RabbitmqBroker,
    _RabbitmqConsumer,
    _RabbitmqMessage,
    q_name,
    xq_name,
)
from dramatiq.errors import ConnectionClosed, DecodeError
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

from messages.routing import DEAD_LETTER_REASON_HEADER
from workers.settings import Settings

log = logging.getLogger(__name__)

#: Longest an actor may run; deploy/ grace periods are longer than this.
ACTOR_TIME_LIMIT_MS = 60_000
#: Retry backoff for transient failures: 0.5 s doubling up to 5 minutes.
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 300_000


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


def dead_letter(channel: Any, queue_name: str, body: bytes, reason: str) -> None:
    """Publish ``body`` to the queue's dead-letter queue with the reason in a header."""
    channel.basic_publish(
        exchange="",
        routing_key=xq_name(queue_name),
        body=body,
        properties=pika.BasicProperties(
            delivery_mode=2, headers={DEAD_LETTER_REASON_HEADER: reason[:1000]}
        ),
    )


class _PaylinkConsumer(_RabbitmqConsumer):  # type: ignore[misc]
    def __next__(self) -> Any:
        try:
            method, _properties, body = next(self.iterator)
            if method is None:
                return None
        except (
            AssertionError,
            pika.exceptions.AMQPConnectionError,
            pika.exceptions.AMQPChannelError,
        ) as e:
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None
        try:
            message = Message.decode(body)
        except DecodeError as exc:
            reason = f"MALFORMED_MESSAGE: body is not a Dramatiq message ({exc})"
            log.warning("dead-lettering an undecodable message from %s", self.queue_name)
            dead_letter(self.channel, self.queue_name, body, reason)
            self.channel.basic_ack(method.delivery_tag)
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)


class PaylinkBroker(RabbitmqBroker):  # type: ignore[misc]
    """RabbitmqBroker whose consumers dead-letter undecodable bodies with a reason.

    With ``quorum=True`` queues are declared as quorum queues with a delivery limit,
    matching deploy/rabbitmq/definitions.json (a cluster's production setting).
    """

    def __init__(self, *, quorum: bool = False, delivery_limit: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quorum = quorum
        self.delivery_limit = delivery_limit

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return _PaylinkConsumer

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return queue_arguments(queue_name, quorum=self.quorum, delivery_limit=self.delivery_limit)


def build_broker(settings: Settings, *, prometheus: bool = False) -> PaylinkBroker:
    middleware: list[dramatiq.Middleware] = [
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
        from dramatiq.middleware.prometheus import Prometheus

        middleware.insert(0, Prometheus())
    return PaylinkBroker(
        url=settings.broker_url,
        confirm_delivery=True,
        middleware=middleware,
        quorum=settings.quorum_queues,
    )


def declare_command_queues(channel: Any, *, quorum: bool) -> None:
    """Declare every command queue with its .DQ and .XQ exactly as workers do (pika).

    Upstream publishers use mandatory publishes: the queues must exist before the
    first worker starts (deploy/ declares them through the RabbitMQ definitions).
    """
    from messages.routing import ALL_QUEUES

    for queue in ALL_QUEUES:
        args = queue_arguments(queue, quorum=quorum)
        channel.queue_declare(queue, durable=True, arguments=args)
        channel.queue_declare(f"{queue}.DQ", durable=True, arguments=args)
        channel.queue_declare(xq_name(queue), durable=True, arguments=XQ_ARGUMENTS)
