"""Dramatiq's private RabbitMQ code paylink builds on, kept here and nowhere else.

paylink checks every delivery before Dramatiq decodes it and writes its own dead
letters (``workers.runtime.consumer``), and declares its queues with its own arguments
and bindings (``workers.runtime.broker``). Dramatiq offers no public hook for any of
it: its consumer (``_RabbitmqConsumer``) decodes in ``__next__`` and lets RabbitMQ
dead-letter in ``nack``; queue arguments and declaration are private methods of
``RabbitmqBroker``. Middleware cannot do it either: it sees a message only once
decoded, never the AMQP properties (exchange, routing key, ``user_id``) nor a body
that is not a message at all. So this module subclasses both once and gives the rest
of paylink public hooks instead:

- :class:`CheckingConsumer`: ``admit`` (the message to run, or why not),
  ``dead_letter`` (write one on the consumer's channel) and ``failed_for_good`` (what a
  message that failed for good leaves in the dead-letter queue, and why);
- :class:`DeclaringBroker`: ``arguments_for`` and ``declared`` around Dramatiq's
  own queue declaration.

``CheckingConsumer.__next__`` and ``nack`` are Dramatiq 2.2's own, with the hooks
where Dramatiq decodes and nacks. The import refuses another major/minor version, and
``tests/unit/test_library_internals.py`` fails when a name used here disappears, a
signature changes, or the code these methods replace is no longer what they copied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import pika
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from pika.adapters.blocking_connection import BlockingChannel

from workers.runtime.library_versions import require_version

#: The Dramatiq release whose private code this module copies and subclasses.
WRITTEN_AGAINST = (2, 2)
require_version("dramatiq", WRITTEN_AGAINST, __name__)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What RabbitMQ delivered, before anything of it is trusted."""

    body: bytes
    exchange: str
    routing_key: str
    #: The AMQP ``user_id`` property: RabbitMQ checks it is the publisher's broker user.
    user_id: str | None


class CheckingConsumer(_RabbitmqConsumer):
    """Dramatiq's RabbitMQ consumer, asking ``admit`` instead of decoding, and writing
    failed messages with ``failed_for_good`` instead of letting RabbitMQ dead-letter them."""

    def admit(self, delivery: Delivery) -> Message[Any] | str:
        """The message Dramatiq runs, or why ``delivery`` goes to the dead-letter queue.
        Must not raise for any body (an exception here is dead-lettered as malformed)."""
        raise NotImplementedError

    def dead_letter(self, channel: BlockingChannel, body: bytes, reason: str) -> None:
        """Write ``body`` to this queue's dead-letter queue on ``channel``."""
        raise NotImplementedError

    def failed_for_good(
        self, message: Message[Any], exception: BaseException | None
    ) -> tuple[bytes, str]:
        """The dead-letter body and reason of ``message``, which failed for good."""
        raise NotImplementedError

    def __next__(self) -> _RabbitmqMessage | None:
        try:
            method, properties, body = next(self.iterator)
            if method is None:
                return None
        except (
            AssertionError,
            pika.exceptions.AMQPConnectionError,
            pika.exceptions.AMQPChannelError,
        ) as e:
            # As Dramatiq: a queue that disappeared is declared again on restart.
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None
        delivery = Delivery(
            body,
            str(method.exchange or ""),
            str(method.routing_key or ""),
            getattr(properties, "user_id", None),
        )
        try:
            message = self.admit(delivery)
        except Exception as exc:  # a body must never stop the consumer
            message = f"MALFORMED_MESSAGE: {type(exc).__name__} while reading the body"
        if isinstance(message, str):
            log.warning("dead-lettering a message from %s: %s", self.queue_name, message[:200])
            self.dead_letter(self.channel, body, message)
            self.channel.basic_ack(method.delivery_tag)
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)

    def nack(self, message: MessageProxy) -> None:
        tag = message._tag
        try:
            self.known_tags.remove(tag)
        except KeyError:
            log.warning("Failed to nack message: not in known tags.")
            return
        body, reason = self.failed_for_good(message._message, getattr(message, "_exception", None))
        self.connection.add_callback_threadsafe(
            partial(self._dead_letter_and_ack, tag, body, reason)
        )

    def _dead_letter_and_ack(self, tag: int, body: bytes, reason: str) -> None:
        self.dead_letter(self.channel, body, reason)
        self.channel.basic_ack(tag)


class DeclaringBroker(RabbitmqBroker):
    """RabbitmqBroker with public hooks around its private queue declaration."""

    def arguments_for(self, queue_name: str) -> dict[str, Any]:
        """The arguments ``queue_name`` (and its ``.DQ``) are declared with."""
        return dict(super()._build_queue_arguments(queue_name))

    def declared(self, queue_name: str) -> None:
        """Called on the broker's channel once Dramatiq has declared ``queue_name``."""

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return self.arguments_for(queue_name)

    def _declare_queue(self, queue_name: str) -> Any:
        declared = super()._declare_queue(queue_name)
        self.declared(queue_name)
        return declared
