"""`paylink publish`: send one command from a JSON file, exactly as an upstream system would.

The command is validated here first, with the same parser the workers use, so a bad
file is refused field by field and nothing reaches the queue.

Publishing again must not act again: a file without a ``command_id`` gets one derived
from the command type and the file's content (``issued_at`` aside, which the
idempotency check ignores too), so re-running a publish that timed out is a duplicate
paylink recognises, never a second capture. ``--command-id`` gives one explicitly; a
fresh UUID there sends the same content as a new command.
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
from workers.cli.common import CliError, load_settings, note, open_broker, print_error


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


#: Namespace of the command ids derived from a file's content (uuid5).
DERIVED_ID_NAMESPACE = uuid.UUID("8f6c3b62-2a4f-5e1d-9c57-0d1f6a7b2c31")


def derived_command_id(command_type: str, payload: dict[str, Any]) -> uuid.UUID:
    """The same command type and content (``command_id`` and ``issued_at`` aside) give
    the same id: a retried publish is recognised as the same command."""
    content = {k: v for k, v in payload.items() if k not in ("command_id", "issued_at")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return uuid.uuid5(DERIVED_ID_NAMESPACE, f"{command_type}:{canonical}")


def publish(
    command: Annotated[
        str, typer.Argument(help="Command type (CreateOrder) or actor name (create_order).")
    ],
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The command as JSON; '-' reads stdin.")
    ],
    command_id: Annotated[
        str | None,
        typer.Option(
            "--command-id",
            help="The idempotency key. Default: the file's command_id, else one derived from "
            "the command type and the file's content (publishing it again is a duplicate).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the message; send nothing.")
    ] = False,
) -> None:
    """Validate a command and publish it to its queue (persistent, confirmed); print its id."""
    payload = read_json(file)
    if not isinstance(payload, dict):
        raise CliError(f"{file}: a command is a JSON object, not {type(payload).__name__}")
    publish_payload(command, payload, command_id=command_id, dry_run=dry_run)


def publish_payload(
    command: str, payload: dict[str, Any], *, command_id: str | None, dry_run: bool
) -> None:
    """``paylink publish`` after the file is read: also what other commands publish with."""
    route = route_named(command)
    if command_id is not None:
        try:
            given = uuid.UUID(command_id.strip())
        except ValueError:
            raise CliError(f"--command-id: not a UUID: {command_id!r}", 2) from None
        if "command_id" in payload and str(payload["command_id"]) != str(given):
            raise CliError(f"--command-id {given} differs from the file's command_id", 2)
        payload = {**payload, "command_id": str(given)}
    filled = {
        "command_id": str(derived_command_id(route.command_type, payload)),
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
    if "command_id" in filled:
        note(f"note: no command_id given; derived from the file: {filled['command_id']}")
    if "issued_at" in filled:
        note(f"note: no issued_at given; using {filled['issued_at']}")
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
