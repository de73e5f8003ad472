"""Which queue and actor each command travels on, and how raw bytes become a command.

The wire format is Dramatiq's JSON message, so any language can publish::

    {"queue_name": "paylink.create-order", "actor_name": "create_order",
     "args": [{...the command...}], "kwargs": {}, "options": {},
     "message_id": "<uuid>", "message_timestamp": <unix millis>}

published persistent to the topic exchange ``paylink.commands`` with routing key =
command type and the AMQP ``user_id`` of the publisher's broker user; or, for one more
release, to the default exchange with routing key = queue name.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from messages import commands as c
from messages.common import CommandBase


class Queue:
    STORE_CONFIG = "paylink.store-config"
    CREATE_ORDER = "paylink.create-order"
    SEND_LINK = "paylink.send-link"
    LINK_EXPIRY = "paylink.link-expiry"
    CHECKOUT = "paylink.checkout"
    ORDER_MANAGEMENT = "paylink.order-management"


ALL_QUEUES: tuple[str, ...] = (
    Queue.STORE_CONFIG,
    Queue.CREATE_ORDER,
    Queue.SEND_LINK,
    Queue.LINK_EXPIRY,
    Queue.CHECKOUT,
    Queue.ORDER_MANAGEMENT,
)

#: Topic exchange every event is published to, with routing key ``<store>.<event type>``
#: (:func:`event_routing_key`): an upstream's queue is bound to its stores' events only.
EVENTS_EXCHANGE = "paylink.events"
#: The store word of an event that concerns no store (no store id contains ``~``).
NO_STORE = "~"


def event_routing_key(event_type: str, store_id: str | None) -> str:
    """``store-1.order.created``. A store id is one topic word: its dots are written
    ``%2E``, so binding ``store.#`` can never match the events of store ``store.a``."""
    store = store_id.replace(".", "%2E") if store_id else NO_STORE
    return f"{store}.{event_type}"


def event_type_of(routing_key: str) -> str:
    """The event type an :func:`event_routing_key` carries."""
    return routing_key.partition(".")[2]


#: Header paylink puts on a message it dead-letters itself.
DEAD_LETTER_REASON_HEADER = "x-paylink-reason"
#: No paylink field needs an integer of more than 19 digits (int64); a longer one is
#: never valid, and Python refuses to convert past 4300 digits (CVE-2020-10735).
MAX_INTEGER_DIGITS = 19
#: Nesting of the deepest valid message (envelope, args, command, lines, line) is 5.
MAX_NESTING = 16


@dataclass(frozen=True, slots=True)
class CommandRoute:
    model: type[CommandBase]
    actor_name: str
    queue_name: str

    @property
    def command_type(self) -> str:
        return self.model.__name__


ROUTES: tuple[CommandRoute, ...] = (
    CommandRoute(c.ConfigureStore, "configure_store", Queue.STORE_CONFIG),
    CommandRoute(c.CreateOrder, "create_order", Queue.CREATE_ORDER),
    CommandRoute(c.SendPaymentLink, "send_payment_link", Queue.SEND_LINK),
    CommandRoute(c.ResendPaymentLink, "resend_payment_link", Queue.SEND_LINK),
    CommandRoute(c.ExpirePaymentLink, "expire_payment_link", Queue.LINK_EXPIRY),
    CommandRoute(c.PaymentLinkOpened, "payment_link_opened", Queue.CHECKOUT),
    CommandRoute(c.CheckoutCompleted, "checkout_completed", Queue.CHECKOUT),
    CommandRoute(c.RecordLinkDelivery, "record_link_delivery", Queue.CHECKOUT),
    CommandRoute(c.CapturePayment, "capture_payment", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.RefundPayment, "refund_payment", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.CancelOrder, "cancel_order", Queue.ORDER_MANAGEMENT),
    CommandRoute(
        c.ReleaseRemainingAuthorization, "release_remaining_authorization", Queue.ORDER_MANAGEMENT
    ),
    CommandRoute(c.AddReturnFee, "add_return_fee", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.UpdateOrderLines, "update_order_lines", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.UpdateCustomerDetails, "update_customer_details", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.EraseCustomerData, "erase_customer_data", Queue.ORDER_MANAGEMENT),
    CommandRoute(c.ExpireAuthorization, "expire_authorization", Queue.ORDER_MANAGEMENT),
)

BY_ACTOR: dict[str, CommandRoute] = {r.actor_name: r for r in ROUTES}
BY_TYPE: dict[str, CommandRoute] = {r.command_type: r for r in ROUTES}

#: Topic exchange upstream systems publish commands to, routing key = command type
#: (``CreateOrder``), with the AMQP ``user_id`` property set to their broker user.
COMMANDS_EXCHANGE = "paylink.commands"
#: Commands only paylink's own processes send: the commands exchange never routes them.
INTERNAL_COMMANDS = frozenset({"SendPaymentLink", "ExpirePaymentLink", "ExpireAuthorization"})
#: Commands the hosted checkout sends (its own broker user, ``deploy/rabbitmq``); it
#: also serves the providers' delivery webhooks.
CHECKOUT_COMMANDS = frozenset({"PaymentLinkOpened", "CheckoutCompleted", "RecordLinkDelivery"})
#: What the commands exchange routes: every command but the internal ones.
PUBLISHED_ROUTES: tuple[CommandRoute, ...] = tuple(
    r for r in ROUTES if r.command_type not in INTERNAL_COMMANDS
)


def route_for(command: CommandBase | type[CommandBase]) -> CommandRoute:
    model = command if isinstance(command, type) else type(command)
    return BY_TYPE[model.__name__]


@dataclass(frozen=True, slots=True)
class ParseError:
    """Why a message body is not a valid command.

    ``command_id`` is set when one could be salvaged: then the caller publishes a
    rejection event; without it the message is dead-lettered with ``reason``.
    """

    code: str
    reason: str
    command_id: UUID | None = None
    command_type: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    route: CommandRoute
    command: CommandBase
    message_id: str | None


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A body that is JSON, and why it still cannot be a valid message ("" if it can).

    An integer longer than any field allows or nesting deeper than any message has is
    not fatal to decoding, so a command id beside it can still be answered: the
    integer is replaced by a description of it.
    """

    data: Any
    problem: str = ""


def decode_body(body: bytes | str) -> DecodedBody | ParseError:
    """JSON of an untrusted body; any failure (a ``RecursionError`` from deep nesting
    included) is an answer, never an exception that stops the reader."""
    oversized: list[int] = []

    def parse_int(digits: str) -> int | str:
        length = len(digits.lstrip("-"))
        if length > MAX_INTEGER_DIGITS:
            oversized.append(length)
            return f"<integer of {length} digits>"
        return int(digits)

    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        data = json.loads(text, parse_int=parse_int)
    except Exception as exc:  # hostile input: every failure is a reason, none escapes
        return ParseError("MALFORMED_JSON", f"body is not JSON: {type(exc).__name__}: {exc}"[:300])
    if oversized:
        problem = f"an integer of {max(oversized)} digits (at most {MAX_INTEGER_DIGITS} are valid)"
    elif _nested_deeper_than(data, MAX_NESTING):
        problem = f"nested deeper than {MAX_NESTING} levels"
    else:
        problem = ""
    return DecodedBody(data, problem)


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Iterative, so a hostile depth cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _salvage_command_id(payload: Any) -> UUID | None:
    if not isinstance(payload, dict):
        return None
    try:
        return UUID(str(payload.get("command_id")))
    except (ValueError, TypeError):
        return None


def _summarize(exc: ValidationError, limit: int = 5) -> tuple[str, list[dict[str, Any]]]:
    errors = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    shown = "; ".join(f"{e['loc'] or '(root)'}: {e['msg']}" for e in errors[:limit])
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return shown + more, errors


def parse_command(actor_name: str, payload: object) -> CommandBase | ParseError:
    """Validate one command payload (as decoded from JSON) for the actor it was addressed to.

    Strictly, as JSON: a UUID, a date-time or an enum value arrives as a string and is
    parsed, but no string becomes a number or a boolean and no float an integer
    (``"auto_capture": "yes"`` is refused, not read as true). Validating the JSON text
    is how pydantic offers exactly that; dumping a command again costs a few
    microseconds.
    """
    route = BY_ACTOR.get(actor_name)
    if route is None:
        return ParseError("UNKNOWN_COMMAND", f"no command is handled by actor {actor_name!r}")
    try:
        return route.model.model_validate_json(json.dumps(payload, default=str), strict=True)
    except ValidationError as exc:
        reason, errors = _summarize(exc)
        return ParseError(
            "VALIDATION_FAILED",
            f"{route.command_type} is invalid: {reason}",
            command_id=_salvage_command_id(payload),
            command_type=route.command_type,
            errors=errors,
        )


def parse_message(body: bytes | str) -> ParsedMessage | ParseError:
    """Turn a raw Dramatiq message body into its command, or say precisely why not."""
    decoded = decode_body(body)
    if isinstance(decoded, ParseError):
        return decoded
    data = decoded.data
    if not isinstance(data, dict):
        return ParseError("NOT_A_MESSAGE", "body must be a JSON object (a Dramatiq message)")
    actor_name = data.get("actor_name")
    args = data.get("args")
    if not isinstance(actor_name, str) or not isinstance(args, list):
        return ParseError("NOT_A_MESSAGE", "missing 'actor_name' or 'args' (a Dramatiq message)")
    if decoded.problem:
        return ParseError(
            "NOT_A_MESSAGE",
            decoded.problem,
            command_id=_salvage_command_id(args[0]) if args else None,
        )
    if len(args) != 1 or data.get("kwargs"):
        return ParseError(
            "NOT_A_MESSAGE",
            "a paylink message has exactly one positional argument: the command object",
            command_id=_salvage_command_id(args[0]) if args else None,
        )
    parsed = parse_command(actor_name, args[0])
    if isinstance(parsed, ParseError):
        return parsed
    message_id = data.get("message_id")
    return ParsedMessage(BY_ACTOR[actor_name], parsed, str(message_id) if message_id else None)


def encode_command(command: CommandBase, *, message_id: str | None = None) -> dict[str, Any]:
    """The exact Dramatiq message (as a dict) carrying ``command``."""
    route = route_for(command)
    return {
        "queue_name": route.queue_name,
        "actor_name": route.actor_name,
        "args": [command.model_dump(mode="json")],
        "kwargs": {},
        "options": {},
        "message_id": message_id or str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }


def command_bytes(command: CommandBase, *, message_id: str | None = None) -> bytes:
    return json.dumps(
        encode_command(command, message_id=message_id), separators=(",", ":")
    ).encode()
