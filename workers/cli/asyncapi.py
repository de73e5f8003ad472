"""The wire contract as an AsyncAPI 3.0.0 document, generated from messages/.

``paylink asyncapi --write`` regenerates docs/asyncapi.yaml; a test fails when the
committed file is out of date, so the document can never drift from the models.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

import yaml

from messages.events import EVENT_TYPES
from messages.routing import (
    ALL_QUEUES,
    COMMANDS_EXCHANGE,
    DEAD_LETTER_REASON_HEADER,
    EVENTS_EXCHANGE,
    NO_STORE,
    ROUTES,
)
from messages.schema import command_schemas, event_schemas

#: Version of the contract itself: bump it when a command or event changes shape.
#: 2.0.0: money per line (events carry line shares; payment.refunded.amount is gross
#: with return_fee_amount and refunded_to_customer beside it; AddReturnFee is a refund
#: with a fee withheld and needs refund_amount).
#: 2.1.0: commands published to the paylink.commands exchange with the AMQP user_id;
#: types enforced as the schemas state them (no "yes" for a boolean, no "2" or 2.0 for
#: an integer); text refuses control and format characters.
#: 3.0.0: events are routed by store (routing key <store_id>.<event type>), so each
#: upstream's queue is bound to its stores' events only.
CONTRACT_VERSION = "3.0.0"
DEFAULT_PATH = Path("docs/asyncapi.yaml")
AMQP_BINDING_VERSION = "0.3.0"
_SCHEMAS = "#/components/schemas/"

_DESCRIPTION = f"""\
paylink turns commands on RabbitMQ into order state and events.

**Commands** are Dramatiq messages (JSON) whose single positional argument is the
command object. Publish them to the topic exchange `{COMMANDS_EXCHANGE}` with routing
key = the command type (`CreateOrder`), persistent (delivery mode 2), content type
application/json, and the AMQP `user_id` property set to your broker user, for example:

```json
{{"queue_name": "paylink.create-order", "actor_name": "create_order",
 "args": [{{"command_id": "...", "issued_at": "...", "...": "..."}}],
 "kwargs": {{}}, "options": {{}},
 "message_id": "<uuid>", "message_timestamp": 1767225600000}}
```

**Trust model.** Each upstream system has its own broker user; RabbitMQ authenticates
it and refuses a `user_id` that is not the connection's, and topic permissions limit
it to the merchant commands (the hosted checkout to `PaymentLinkOpened` and
`CheckoutCompleted`; `SendPaymentLink`, `ExpirePaymentLink` and `ExpireAuthorization`
are paylink's own and not routed from the exchange). The upstream authenticates its
users and states the `actor`; paylink narrows that actor to the stores and roles an
operator granted the upstream, then applies its permission table. Publishing to the
default exchange with routing key = queue name still works for one release where a
broker allows it, without that narrowing.

`command_id` is the idempotency key: a command id seen before has no second effect.
A command that cannot be carried out produces an `order.rejected` event naming the
`command_id`, a stable `code` and a human `message`. A message that cannot be parsed
at all is moved to `<queue>.XQ` with the reason in the `{DEAD_LETTER_REASON_HEADER}`
header.

**Events** are published to the topic exchange `{EVENTS_EXCHANGE}` with routing key
`<store_id>.<event type>` (`store-1.order.created`; a dot inside a store id is written
`%2E`, an event of no store has `{NO_STORE}`), persistent, JSON. Bind `<store_id>.#` for
one store's events, `*.order.created` for one type of every store you may read; the
operator binds each upstream's queue to its stores only.
"""


def _camel(text: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _queue_channel_id(queue: str) -> str:
    return _camel(queue.removeprefix("paylink.")) + "Queue"


def _event_channel_id(event_type: str) -> str:
    return _camel(event_type) + "Event"


def _summary(doc: str | None) -> str:
    return " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())


def _relocate_refs(node: object) -> object:
    """Point pydantic's ``#/$defs/X`` references at ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            k: (
                _SCHEMAS + v.removeprefix("#/$defs/")
                if k == "$ref" and isinstance(v, str)
                else _relocate_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_relocate_refs(v) for v in node]
    return node


def _lift(name: str, schema: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add ``schema`` as ``name`` and its ``$defs`` beside it (identical or an error)."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})
    for def_name, definition in [*defs.items(), (name, schema)]:
        relocated = _relocate_refs(definition)
        if schemas.setdefault(def_name, relocated) != relocated:
            raise ValueError(f"two different schemas are both named {def_name!r}")


def _envelope(command_type: str, queue: str, actor: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{command_type} message",
        "description": (
            f"The Dramatiq message carrying one {command_type}: publish it to the default "
            f"exchange with routing key {queue}."
        ),
        "required": ["queue_name", "actor_name", "args", "kwargs", "options"],
        "properties": {
            "queue_name": {"type": "string", "const": queue},
            "actor_name": {"type": "string", "const": actor},
            "args": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {"$ref": _SCHEMAS + command_type},
            },
            "kwargs": {"type": "object", "maxProperties": 0},
            "options": {"type": "object", "description": "Dramatiq's own options."},
            "message_id": {"type": "string", "format": "uuid"},
            "message_timestamp": {"type": "integer", "description": "Unix time, milliseconds."},
        },
    }


def _amqp_queue_binding(queue: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "queue",
            "queue": {
                "name": queue,
                "durable": True,
                "exclusive": False,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def _amqp_exchange_binding() -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": EVENTS_EXCHANGE,
                "type": "topic",
                "durable": True,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, as plain data (deterministic)."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    commands = command_schemas()
    for queue in ALL_QUEUES:
        routes = [r for r in ROUTES if r.queue_name == queue]
        channel_id = _queue_channel_id(queue)
        channels[channel_id] = {
            "address": queue,
            "title": queue,
            "description": (
                f"Command queue ({', '.join(r.actor_name for r in routes)}). Retry delays "
                f"wait in {queue}.DQ; dead letters go to {queue}.XQ."
            ),
            "messages": {
                r.command_type: {"$ref": f"#/components/messages/{r.command_type}"} for r in routes
            },
            "bindings": _amqp_queue_binding(queue),
        }
        for r in routes:
            _lift(r.command_type, commands[r.command_type], schemas)
            schemas[f"{r.command_type}Message"] = _envelope(r.command_type, queue, r.actor_name)
            messages[r.command_type] = {
                "name": r.command_type,
                "title": r.command_type,
                "summary": _summary(r.model.__doc__) or r.command_type,
                "contentType": "application/json",
                "correlationId": {"location": "$message.payload#/args/0/command_id"},
                "payload": {"$ref": f"{_SCHEMAS}{r.command_type}Message"},
            }
            operations[f"receive{r.command_type}"] = {
                "action": "receive",
                "title": f"{r.actor_name} handles {r.command_type}",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{r.command_type}"}],
                "bindings": {
                    "amqp": {"ack": True, "deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}
                },
            }

    events = event_schemas()
    for event_type, model in EVENT_TYPES.items():
        name = model.__name__
        channel_id = _event_channel_id(event_type)
        _lift(name, events[name], schemas)
        messages[name] = {
            "name": name,
            "title": name,
            "summary": _summary(model.__doc__) or event_type,
            "contentType": "application/json",
            "correlationId": {"location": "$message.payload#/command_id"},
            "payload": {"$ref": _SCHEMAS + name},
        }
        channels[channel_id] = {
            "address": event_type,
            "title": event_type,
            "description": (
                f"Routing key <store_id>.{event_type} on the topic exchange {EVENTS_EXCHANGE}."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": _amqp_exchange_binding(),
        }
        operations[f"send{name}"] = {
            "action": "send",
            "title": f"paylink publishes {event_type}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}},
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "paylink",
            "version": CONTRACT_VERSION,
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ; BROKER_URL names the real nodes.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so descriptions read like the docstrings."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    header = "# Generated from messages/ by `paylink asyncapi --write`. Do not edit.\n"
    body = yaml.dump(
        build_document(),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return header + body


def write(path: Path = DEFAULT_PATH) -> bool:
    """Write the document to ``path``; True when the file changed."""
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True
