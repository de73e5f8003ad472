"""`paylink publish`: send one command from a JSON file, exactly as an upstream system would.

The command is validated here first, with the same parser the workers use, so a bad
file is refused field by field and nothing reaches the queue.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pika
import typer

from messages.routing import BY_ACTOR, BY_TYPE, ROUTES, CommandRoute, ParseError, command_bytes
from messages.routing import parse_command as parse
from workers.cli_common import CliError, load_settings, note, open_broker, print_error


def route_named(name: str) -> CommandRoute:
    """A command by type (``CreateOrder``) or actor name (``create_order``)."""
    route = BY_TYPE.get(name) or BY_ACTOR.get(name.replace("-", "_"))
    if route is None:
        names = ", ".join(r.command_type for r in ROUTES)
        raise CliError(f"unknown command {name!r}; use one of: {names}", 2)
    return route


def read_json(file: Path) -> Any:
    name = "stdin" if str(file) == "-" else str(file)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CliError(f"cannot read {name}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{name}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def publish(
    command: Annotated[
        str, typer.Argument(help="Command type (CreateOrder) or actor name (create_order).")
    ],
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The command as JSON; '-' reads stdin.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the message; send nothing.")
    ] = False,
) -> None:
    """Validate a command and publish it to its queue (persistent, confirmed); print its id."""
    route = route_named(command)
    payload = read_json(file)
    if not isinstance(payload, dict):
        raise CliError(f"{file}: a command is a JSON object, not {type(payload).__name__}")
    filled = {
        "command_id": str(uuid.uuid4()),
        "issued_at": datetime.now(UTC).isoformat(),
    }
    filled = {k: v for k, v in filled.items() if k not in payload}
    parsed = parse(route.actor_name, {**payload, **filled})
    if isinstance(parsed, ParseError):
        for error in parsed.errors or [{"loc": "", "msg": parsed.reason}]:
            print_error(
                f"{route.command_type} is invalid: {error['loc'] or '(root)'}: {error['msg']}"
            )
        raise typer.Exit(1)
    for key, value in filled.items():
        note(f"note: no {key} given; using {value}")
    body = command_bytes(parsed)
    if dry_run:
        typer.echo(body.decode())
        return
    message_id = json.loads(body)["message_id"]
    connection = open_broker(load_settings())
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange="",
            routing_key=route.queue_name,
            body=body,
            properties=pika.BasicProperties(
                delivery_mode=2, content_type="application/json", message_id=message_id
            ),
            mandatory=True,
        )
    except pika.exceptions.UnroutableError:
        raise CliError(
            f"queue {route.queue_name} does not exist: start a worker (`paylink worker`) or "
            "load deploy/rabbitmq definitions; nothing was sent"
        ) from None
    except pika.exceptions.NackError:
        raise CliError(f"RabbitMQ refused the message for {route.queue_name}") from None
    finally:
        if connection.is_open:
            connection.close()
    note(f"published {route.command_type} to {route.queue_name} (message {message_id})")
    typer.echo(str(parsed.command_id))
