"""What the consumer checks before Dramatiq acts on a delivery, and what it dead-letters.

A body that is not even a Dramatiq message is moved to ``<queue>.XQ`` with the
``x-paylink-reason`` header instead of being silently dropped. Whatever goes wrong
while a body is read (a ``RecursionError`` from deeply nested JSON included) is such
a reason: an exception escaping the consumer would make Dramatiq restart it on the
same message every few seconds, stalling the queue behind it. A body over
``PAYLINK_MAX_MESSAGE_BYTES`` is dead-lettered before it is parsed.

The Dramatiq envelope comes from upstream, so the consumer checks it before Dramatiq
acts on it: its keys must be Dramatiq's, its ``queue_name`` the queue it arrived on
(Dramatiq acks through the consumer the envelope names: another queue's would leave
it unacked for good, an unknown one kills the worker thread), its actor must be
served on that queue, it carries exactly one positional argument and no keyword
arguments, no integer longer than any field allows, and its options are only those
Dramatiq itself sets (``on_success``, ``pipe_target`` and the like would send other
messages). A bad envelope whose command still names a ``command_id`` is handed to its
actor with the options cleared, the command cut to its top-level values and the
problem in ``INVALID_ENVELOPE_OPTION``, so the worker records an ``order.rejected``;
any other is dead-lettered with the reason. So is an ``eta`` (a retry's, on a
``.DQ``) further ahead than the longest retry backoff: Dramatiq would hold that
message unacked in worker memory until then, and RabbitMQ's consumer timeout would
close the channel and deliver it again, forever.

A delivery from the commands exchange must be the command its routing key names and
carry its publisher's AMQP ``user_id`` (``Publication``), which goes on with the
message for ``workers.runtime.grants``. A message that fails for good is written to ``.XQ``
by the consumer, redacted, instead of being dead-lettered whole by RabbitMQ
(``PaylinkConsumer.failed_for_good``). Dramatiq's private consumer is subclassed once,
in ``workers.runtime.dramatiq_internals``; this module only fills in its hooks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pika
from dramatiq.broker import Broker
from dramatiq.common import dq_name, q_name, xq_name
from dramatiq.errors import ActorNotFound
from dramatiq.message import Message
from pika.adapters.blocking_connection import BlockingChannel

from messages.routing import (
    BY_ACTOR,
    BY_TYPE,
    COMMANDS_EXCHANGE,
    DEAD_LETTER_REASON_HEADER,
    INTERNAL_COMMANDS,
    ParseError,
    decode_body,
)
from workers.observability.redaction import redact
from workers.runtime.dramatiq_internals import CheckingConsumer, Delivery

log = logging.getLogger(__name__)

#: Retry backoff for transient failures: 0.5 s doubling up to 5 minutes (the broker's
#: Retries); an ``eta`` further ahead than the longest is refused here.
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 300_000


def dead_letter(channel: BlockingChannel, queue_name: str, body: bytes, reason: str) -> None:
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
#: Option naming the broker user that published a command to the commands exchange
#: (its AMQP ``user_id``), set by the consumer and kept through retries (workers.runtime.grants).
PUBLISHER_OPTION = "paylink_publisher"
#: Options Dramatiq's own retries put on a message (plus ``eta`` on a ``.DQ``); a
#: delivery from the default exchange comes from paylink's processes (deploy/rabbitmq).
_RETRY_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", INVALID_ENVELOPE_OPTION, PUBLISHER_OPTION}
)
#: The keys of a Dramatiq message: the first three are required, the others defaulted.
_REQUIRED_KEYS = ("queue_name", "actor_name", "args")
_ENVELOPE_KEYS = frozenset(
    {*_REQUIRED_KEYS, "kwargs", "options", "message_id", "message_timestamp"}
)
#: A retry's ``eta`` is at most the longest backoff ahead; this much more absorbs clock
#: skew between worker hosts. A later one would be held in worker memory until then.
ETA_GRACE_MS = 60_000


def _command_id_in(args: object) -> bool:
    if not isinstance(args, list) or not args or not isinstance(args[0], dict):
        return False
    try:
        UUID(str(args[0].get("command_id")))
    except (ValueError, TypeError):
        return False
    return True


def envelope_problem(
    broker: Broker, queue_name: str, data: dict[str, Any], decode_problem: str = ""
) -> tuple[str, bool]:
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
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        return f"MALFORMED_MESSAGE: envelope lacks {', '.join(missing)}", rejectable
    unknown = sorted(str(key)[:50] for key in set(data) - _ENVELOPE_KEYS)
    if unknown:
        return f"NOT_A_MESSAGE: envelope keys not accepted: {', '.join(unknown)[:200]}", rejectable
    if decode_problem:
        return f"NOT_A_MESSAGE: {decode_problem}", rejectable
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
    if not isinstance(options, dict | None):
        return "NOT_A_MESSAGE: options must be an object", rejectable
    options = options or {}
    allowed = _RETRY_OPTIONS | ({"eta"} if queue_name == dq_name(queue_name) else set())
    unknown = sorted(str(key)[:50] for key in set(options) - allowed)
    if unknown:
        return f"NOT_A_MESSAGE: options not accepted: {', '.join(unknown)[:200]}", rejectable
    retries = options.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        return "NOT_A_MESSAGE: options.retries must be a non-negative integer", rejectable
    if "eta" in options:
        eta, latest = options["eta"], int(time.time() * 1000) + MAX_BACKOFF_MS + ETA_GRACE_MS
        if not isinstance(eta, int | float) or isinstance(eta, bool) or not eta <= latest:
            # Never run, never answered: whoever set it is not one of paylink's retries.
            return (
                f"ETA_TOO_FAR: eta {str(eta)[:30]} is beyond the longest retry backoff "
                f"({MAX_BACKOFF_MS // 1000} s)"
            ), False
    timestamp = data.get("message_timestamp", 0)
    if not isinstance(data.get("message_id", ""), str) or not (
        isinstance(timestamp, int) and not isinstance(timestamp, bool)
    ):
        return "NOT_A_MESSAGE: message_id must be a string, message_timestamp an integer", (
            rejectable
        )
    return "", False


def _scalars(payload: dict[str, Any]) -> dict[str, Any]:
    """What a rejection needs of a command from a bad envelope: its top-level values
    (``command_id``, ``order_id``, ``store_id``, ``token``) and the stores its actor
    claims (``workers.runtime.targets``), nothing else nested."""
    kept: dict[str, Any] = {
        k: v for k, v in payload.items() if isinstance(v, str | int | float | bool | None)
    }
    actor = payload.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("store_ids"), list):
        kept["actor"] = {"store_ids": [s for s in actor["store_ids"][:1000] if isinstance(s, str)]}
    return kept


@dataclass(frozen=True, slots=True)
class Publication:
    """How a delivery reached its queue: the exchange, routing key and AMQP ``user_id``."""

    exchange: str
    routing_key: str
    user_id: str | None

    def problem(self, data: dict[str, Any]) -> str:
        """Why the envelope's command may not arrive this way ("" if it may).

        Through the commands exchange the routing key is what RabbitMQ's topic
        permissions allowed this publisher, so the envelope's command must be the one
        it names (two commands share a queue: an upstream allowed ResendPaymentLink
        must not slip a SendPaymentLink in), and the publisher must say who it is.
        """
        if self.exchange != COMMANDS_EXCHANGE:
            return ""  # the default exchange: paylink's own processes, or upstreams for
            # one more release (deploy/rabbitmq grants them only the commands exchange)
        route = BY_ACTOR.get(data["actor_name"])
        command_type = route.command_type if route else str(data["actor_name"])[:100]
        if command_type in INTERNAL_COMMANDS or self.routing_key != command_type:
            return (
                f"WRONG_ROUTING_KEY: {command_type} may not be published as "
                f"{self.routing_key[:100]!r} to {COMMANDS_EXCHANGE}"
            )
        if not self.user_id:
            return "NO_PUBLISHER: set the AMQP user_id property to your broker user"
        return ""

    def actor_named(self) -> str | None:
        """The actor of the command the routing key names, if it came from the commands
        exchange; None otherwise."""
        route = BY_TYPE.get(self.routing_key) if self.exchange == COMMANDS_EXCHANGE else None
        return route.actor_name if route is not None else None


#: Actors whose dead letters lose their link token (``PaylinkConsumer.failed_for_good``).
_TOKEN_BEARING_INTERNAL = frozenset({"send_payment_link"})


def dead_letter_body(message: Message[Any]) -> tuple[bytes, bool]:
    """What a failed message leaves in ``.XQ`` (no token of ours, a redacted
    traceback), and whether a link token was taken out."""
    options = dict(message.options)
    if isinstance(options.get("traceback"), str):
        options["traceback"] = redact(options["traceback"])
    args, stripped = message.args, False
    if message.actor_name in _TOKEN_BEARING_INTERNAL and args and isinstance(args[0], dict):
        stripped = "token" in args[0]
        args = ({k: v for k, v in args[0].items() if k != "token"}, *args[1:])
    return bytes(message.copy(args=args, options=options).encode()), stripped


def failure_reason(exception: BaseException | None, token_removed: bool = False) -> str:
    """The ``x-paylink-reason`` of a message that failed for good."""
    what = f"{type(exception).__name__}: {redact(str(exception))}" if exception else "unknown"
    removed = "link token removed, resend the link; " if token_removed else ""
    return f"FAILED: {removed}{what}"


class PaylinkConsumer(CheckingConsumer):
    """Dramatiq's consumer with paylink's checks (see the module doc)."""

    def dead_letter(self, channel: BlockingChannel, body: bytes, reason: str) -> None:
        dead_letter(channel, self.queue_name, body, reason)

    def failed_for_good(
        self, message: Message[Any], exception: BaseException | None
    ) -> tuple[bytes, str]:
        """A message that failed for good goes to ``.XQ`` as paylink writes it, not as
        RabbitMQ would dead-letter it: its traceback redacted, the reason in the header
        and, for SendPaymentLink, without the link token (a dead letter is kept 7 days;
        such a link is sent again by ResendPaymentLink, with a new token)."""
        body, stripped = dead_letter_body(message)
        return body, failure_reason(exception, stripped)

    def admit(self, delivery: Delivery) -> Message[Any] | str:
        return self._checked(
            delivery.body,
            Publication(delivery.exchange, delivery.routing_key, delivery.user_id),
        )

    def _checked(self, body: bytes, publication: Publication) -> Message[Any] | str:
        """The message to run, or why it goes to the dead-letter queue.

        The size is checked before anything is parsed: a large body costs memory for
        every copy a parser makes (eight 10 MiB bodies took a worker from 123 to 224 MiB).
        """
        limit = self.broker.max_message_bytes
        if len(body) > limit:
            return (
                f"MESSAGE_TOO_LARGE: {len(body)} bytes, over the limit of {limit} "
                "(PAYLINK_MAX_MESSAGE_BYTES)"
            )
        decoded = decode_body(body)
        if isinstance(decoded, ParseError):
            return f"MALFORMED_MESSAGE: body is not a Dramatiq message ({decoded.reason})"
        data = decoded.data
        if not isinstance(data, dict):
            return "MALFORMED_MESSAGE: body is not a Dramatiq message (not a JSON object)"
        problem, rejectable = envelope_problem(self.broker, self.queue_name, data, decoded.problem)
        if not problem:
            problem, rejectable = publication.problem(data), _command_id_in(data.get("args"))
        actor_name = data.get("actor_name")
        if problem.startswith("UNKNOWN_COMMAND"):
            # From the commands exchange the routing key says which command it meant to be
            # (RabbitMQ's topic permissions let it through): it is answered as that one.
            actor_name = publication.actor_named()
            rejectable = actor_name is not None and _command_id_in(data.get("args"))
        if problem:
            if not rejectable or not isinstance(actor_name, str):
                return problem
            # its actor records the rejection; nothing else of the envelope is used
            return Message(
                queue_name=self.queue_name,
                actor_name=actor_name,
                args=(_scalars(data["args"][0]),),
                kwargs={},
                options={INVALID_ENVELOPE_OPTION: problem},
                message_id=str(data.get("message_id"))[:100],
                message_timestamp=int(time.time() * 1000),
            )
        options = dict(data.get("options") or {})
        if publication.exchange == COMMANDS_EXCHANGE:
            options[PUBLISHER_OPTION] = publication.user_id
        return Message(
            **{
                **data,
                "args": tuple(data["args"]),
                "kwargs": data.get("kwargs") or {},
                "options": options,
            }
        )
