"""The Dramatiq broker on RabbitMQ, with paylink's dead-lettering and middleware.

Dramatiq declares each command queue with ``<queue>.DQ`` (retry delays, seconds to
minutes, never the 48 h expiry) and ``<queue>.XQ`` (dead letters) beside it.
A body that is not even a Dramatiq message is moved to ``<queue>.XQ`` with the
``x-paylink-reason`` header instead of being silently dropped.

The Dramatiq envelope comes from upstream, so the consumer checks it before Dramatiq
acts on it: its ``queue_name`` must be the queue it arrived on (Dramatiq acks through
the consumer the envelope names: another queue's would leave it unacked for good, an
unknown one kills the worker thread), its actor must be served on that queue, it
carries exactly one positional argument and no keyword arguments, and its options
are only those Dramatiq itself sets (``eta``, ``on_success``, ``pipe_target`` and the
like would hold it in memory or send other messages). A bad envelope whose command
still names a ``command_id`` is handed to its actor with the options cleared and the
problem in ``INVALID_ENVELOPE_OPTION``, so the worker records an ``order.rejected``;
any other is dead-lettered with the reason.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from uuid import UUID

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import (
    DEAD_MESSAGE_TTL,
    RabbitmqBroker,
    _RabbitmqConsumer,
    _RabbitmqMessage,
    dq_name,
    q_name,
    xq_name,
)
from dramatiq.errors import ActorNotFound, ConnectionClosed, DecodeError
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


#: Option a sanitised message carries when its envelope was invalid (see module doc).
INVALID_ENVELOPE_OPTION = "paylink_invalid_envelope"
#: Options Dramatiq's own retries put on a message (plus ``eta`` on a ``.DQ``).
_RETRY_OPTIONS = frozenset({"retries", "traceback", "requeue_timestamp", INVALID_ENVELOPE_OPTION})


def _command_id_in(args: Any) -> bool:
    if not isinstance(args, list) or not args or not isinstance(args[0], dict):
        return False
    try:
        UUID(str(args[0].get("command_id")))
    except (ValueError, TypeError):
        return False
    return True


def envelope_problem(broker: Any, queue_name: str, data: dict[str, Any]) -> tuple[str, bool]:
    """Why a decoded envelope may not be run as it is ("" if it may), and whether its
    command can still be rejected by its actor (known actor of this queue, command id)."""
    actor_name = data.get("actor_name")
    try:
        actor = broker.get_actor(actor_name) if isinstance(actor_name, str) else None
    except ActorNotFound:
        actor = None
    if actor is None:
        return f"UNKNOWN_COMMAND: no command is handled by actor {str(actor_name)[:100]!r}", False
    rejectable = _command_id_in(data.get("args"))
    if actor.queue_name != q_name(queue_name):
        return f"WRONG_QUEUE: actor {actor_name!r} is not served on {queue_name}", rejectable
    if data.get("queue_name") != queue_name:
        return f"WRONG_QUEUE: envelope names queue {str(data.get('queue_name'))[:100]!r}", (
            rejectable
        )
    args, kwargs, options = data.get("args"), data.get("kwargs"), data.get("options")
    if not isinstance(args, list) or len(args) != 1 or kwargs not in ({}, None):
        return "NOT_A_MESSAGE: exactly one positional argument (the command) is accepted", (
            rejectable
        )
    if not isinstance(options, dict):
        return "NOT_A_MESSAGE: options must be an object", rejectable
    allowed = _RETRY_OPTIONS | ({"eta"} if queue_name == dq_name(queue_name) else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        return f"NOT_A_MESSAGE: options not accepted: {', '.join(unknown)[:200]}", rejectable
    retries = options.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        return "NOT_A_MESSAGE: options.retries must be a non-negative integer", rejectable
    timestamp = data.get("message_timestamp")
    if not isinstance(data.get("message_id"), str) or not (
        isinstance(timestamp, int) and not isinstance(timestamp, bool)
    ):
        return "NOT_A_MESSAGE: message_id must be a string, message_timestamp an integer", (
            rejectable
        )
    return "", False


def _decode_envelope(body: bytes) -> dict[str, Any]:
    """The envelope as a JSON object (parsed once: the checks and the message share it)."""
    data = json.loads(body.decode("utf-8"))  # as Dramatiq decodes it (no UTF-16 guess)
    if not isinstance(data, dict):
        raise DecodeError("not a JSON object", body, None)  # type: ignore[no-untyped-call]
    return data


def _message(data: dict[str, Any], body: bytes) -> Message[Any]:
    """What ``Message.decode`` builds from ``body``, from its already parsed ``data``."""
    try:
        return Message(**{**data, "args": tuple(data["args"])})
    except Exception as e:
        raise DecodeError("Failed to decode message.", body, e) from e  # type: ignore[no-untyped-call]


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
            data = _decode_envelope(body)
            message = _message(data, body)
        except (DecodeError, ValueError) as exc:
            reason = f"MALFORMED_MESSAGE: body is not a Dramatiq message ({exc})"
            log.warning("dead-lettering an undecodable message from %s", self.queue_name)
            dead_letter(self.channel, self.queue_name, body, reason)
            self.channel.basic_ack(method.delivery_tag)
            return None
        problem, rejectable = envelope_problem(self.broker, self.queue_name, data)
        if problem and not rejectable:
            log.warning("dead-lettering a message from %s: %s", self.queue_name, problem)
            dead_letter(self.channel, self.queue_name, body, problem)
            self.channel.basic_ack(method.delivery_tag)
            return None
        if problem:  # its actor records the rejection; nothing else of the envelope is used
            message = Message(
                queue_name=self.queue_name,
                actor_name=message.actor_name,
                args=(data["args"][0],),
                kwargs={},
                options={INVALID_ENVELOPE_OPTION: problem},
                message_id=str(data.get("message_id"))[:100],
                message_timestamp=int(time.time() * 1000),
            )
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
