"""`paylink queues` and `paylink dlq`: queue depths, and the dead letters of each queue.

Dead letters are read one at a time with ``basic_get`` (a replay of a million holds
one in memory, not all of them) and acknowledged only once their copy is confirmed
back on the command queue, so a crash mid-replay duplicates at worst (the command id
makes that harmless) and never loses a message. Those left alone go back to the
``.XQ`` when the connection closes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import pika
import typer
from dramatiq.common import xq_name

from messages.routing import DEAD_LETTER_REASON_HEADER, ParseError, parse_message
from workers.cli.common import (
    CliError,
    check_queue,
    emit_table,
    load_settings,
    note,
    open_broker,
    print_error,
    printable,
    progress,
)
from workers.cli.rabbitmq import ManagementApi, inspect_queues
from workers.runtime.amqp import broker_location

dlq_app = typer.Typer(
    help="Dead letters (<queue>.XQ): list, replay to the queue, delete one, purge.",
    no_args_is_help=True,
)

ManagementUrl = Annotated[
    str | None,
    typer.Option(
        "--management-url",
        help="RabbitMQ management API for unacked counts; 'none' to skip. "
        "Default: PAYLINK_RABBITMQ_API_URL, else the broker host, port 15672.",
    ),
]
QueueArg = Annotated[str, typer.Argument(help="Command queue, e.g. paylink.create-order.")]
#: Headers RabbitMQ or paylink add when dead-lettering; a replayed message starts clean.
DEATH_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue")
#: Dramatiq options that describe the failed attempts; a replay gets a fresh budget.
ATTEMPT_OPTIONS = ("retries", "traceback", "eta")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def queues(
    management_url: ManagementUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.")] = False,
) -> None:
    """Depth of every command queue: ready, unacked, consumers, dead letters, delayed."""
    settings = load_settings()
    try:
        depths = inspect_queues(
            settings.broker_url,
            api=ManagementApi.from_settings(settings, management_url),
        )
    except pika.exceptions.AMQPConnectionError as exc:
        raise CliError(
            f"cannot connect to RabbitMQ at {broker_location(settings.broker_url)} "
            f"({type(exc).__name__}); start it or set BROKER_URL"
        ) from None
    if as_json:
        typer.echo(json.dumps([asdict(d) for d in depths], indent=2))
        return
    counts = ("Ready", "Unacked", "Consumers", "Dead", "Delayed")
    emit_table(
        "Command queues",
        ("Queue", *counts),
        [
            (d.queue, "not declared", "", "", _count(d.dead), _count(d.delayed))
            if d.ready is None
            else (
                d.queue,
                _count(d.ready),
                _count(d.unacked),
                _count(d.consumers),
                _count(d.dead),
                _count(d.delayed),
            )
            for d in depths
        ],
        ids=("Queue",),
        right=counts,
        caption="Dead: in <queue>.XQ; delayed: retries waiting in <queue>.DQ.",
    )
    if any(d.unacked is None and d.ready is not None for d in depths):
        note("unacked counts need the RabbitMQ management API (--management-url)")


# ---- dead letters ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    actor: str
    reason: str
    body: str


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_dead_letter(properties: pika.BasicProperties, body: bytes) -> DeadLetter:
    headers = properties.headers or {}
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else {}
    reason = headers.get(DEAD_LETTER_REASON_HEADER)
    if reason is None and headers.get("x-death"):
        death = headers["x-death"][0]
        reason = f"{_text(death.get('reason', '?'))} from {_text(death.get('queue', '?'))}"
    return DeadLetter(
        message_id=str(data.get("message_id") or properties.message_id or "-"),
        actor=str(data.get("actor_name") or "-"),
        reason=_text(reason) if reason is not None else "-",
        body=body[:200].decode(errors="replace"),
    )


class _DeadLetterQueue:
    """A channel on ``<queue>.XQ``; messages taken and not settled go back on close."""

    def __init__(self, queue: str) -> None:
        self.queue, self.xq = queue, xq_name(queue)
        self.connection = open_broker(load_settings())
        self.channel = self.connection.channel()
        try:
            ok = self.channel.queue_declare(self.xq, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self.connection.close()
            if exc.reply_code == 404:
                raise CliError(
                    f"{self.xq} does not exist (no worker declared {queue} yet)"
                ) from None
            raise
        self.size: int = ok.method.message_count

    def __enter__(self) -> _DeadLetterQueue:
        return self

    def __exit__(self, *_: object) -> None:
        if self.connection.is_open:
            self.connection.close()  # unacknowledged deliveries return to the XQ

    def stream(self, limit: int) -> Iterator[tuple[int, pika.BasicProperties, bytes]]:
        """Up to ``limit`` dead letters, one at a time; each stays unacknowledged (so is
        not handed out again) until the caller acks it or the connection closes."""
        for _ in range(limit):
            method, properties, body = self.channel.basic_get(self.xq, auto_ack=False)
            if method is None:
                return
            yield method.delivery_tag, properties, body


@dlq_app.command("list")
def dlq_list(
    queue: QueueArg,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.")] = False,
) -> None:
    """Show dead letters of QUEUE (left in place): message id, actor, reason, body start."""
    with _DeadLetterQueue(check_queue(queue)) as dlq:
        letters = [read_dead_letter(p, b) for _, p, b in dlq.stream(min(limit, dlq.size))]
        size, xq = dlq.size, dlq.xq
    if as_json:
        for letter in letters:  # ensure_ascii: no control character reaches the terminal
            typer.echo(json.dumps(asdict(letter)))
        return
    emit_table(
        f"{xq}: {size} dead letter(s)",
        ("Message ID", "Actor", "Reason", "Body (first 200 characters)"),
        [(d.message_id, d.actor, d.reason, d.body) for d in letters],
        ids=("Message ID",),
    )


def fresh_body(body: bytes, queue: str) -> bytes:
    """The message as first sent, for ``queue``, without the record of failed attempts."""
    data = json.loads(body)
    data["queue_name"] = queue
    options = data.get("options")
    if isinstance(options, dict):
        data["options"] = {k: v for k, v in options.items() if k not in ATTEMPT_OPTIONS}
    return json.dumps(data, separators=(",", ":")).encode()


def _clean_headers(properties: pika.BasicProperties) -> dict[str, Any] | None:
    headers = {
        k: v
        for k, v in (properties.headers or {}).items()
        if k not in DEATH_HEADERS and k != DEAD_LETTER_REASON_HEADER
    }
    return headers or None


def _replay_one(
    dlq: _DeadLetterQueue, queue: str, properties: pika.BasicProperties, body: bytes
) -> str | None:
    """Publish one dead letter back onto ``queue`` (confirmed); why not, if it was not."""
    parsed = parse_message(body)
    if isinstance(parsed, ParseError):
        return f"{parsed.code}: {parsed.reason}"
    if parsed.route.queue_name != queue:
        return f"it is for {parsed.route.queue_name}"
    try:
        dlq.channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=fresh_body(body, queue),
            properties=pika.BasicProperties(
                delivery_mode=2,
                content_type="application/json",
                message_id=properties.message_id,
                headers=_clean_headers(properties),
            ),
            mandatory=True,
        )
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
        raise CliError(
            f"RabbitMQ did not take the copy for {queue} ({type(exc).__name__}); "
            f"{read_dead_letter(properties, body).message_id} stays in {dlq.xq}"
        ) from None
    return None


@dlq_app.command("replay")
def dlq_replay(
    queue: QueueArg,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="Replay only this message.")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Move dead letters of QUEUE back onto QUEUE (confirmed, then removed from the XQ),
    one at a time, with a progress bar on a terminal."""
    if bool(message_id) == replay_all:
        raise CliError("say which: --message-id ID or --all", 2)
    name = check_queue(queue)
    replayed, left, found = 0, 0, False
    with _DeadLetterQueue(name) as dlq, progress(dlq.size, f"replaying {dlq.xq}") as advance:
        dlq.channel.confirm_delivery()
        for tag, properties, body in dlq.stream(dlq.size):
            advance()
            letter = read_dead_letter(properties, body)
            if message_id and letter.message_id != message_id:
                continue
            found = True
            why = _replay_one(dlq, name, properties, body)
            if why is not None:
                print_error(f"{letter.message_id}: not replayed, left in {dlq.xq} ({why})")
                left += 1
            else:
                dlq.channel.basic_ack(tag)
                replayed += 1
            if message_id:
                break
        xq = dlq.xq
    if message_id and not found:
        raise CliError(f"no message {message_id} in {xq}")
    typer.echo(f"replayed {replayed} message(s) from {xq} to {name}")
    if left:
        raise typer.Exit(1)


@dlq_app.command("delete")
def dlq_delete(
    queue: QueueArg,
    message_id: Annotated[str, typer.Option("--message-id", help="The dead letter to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the message is lost.")] = False,
) -> None:
    """Delete one dead letter of QUEUE, for good; the others stay."""
    name = check_queue(queue)
    if not yes:
        raise CliError(f"this deletes {message_id} from {xq_name(name)} for good; add --yes", 2)
    with _DeadLetterQueue(name) as dlq, progress(dlq.size, f"searching {dlq.xq}") as advance:
        for tag, properties, body in dlq.stream(dlq.size):
            advance()
            if read_dead_letter(properties, body).message_id == message_id:
                dlq.channel.basic_ack(tag)
                break
        else:
            raise CliError(f"no message {message_id} in {dlq.xq}")
        xq = dlq.xq
    typer.echo(f"deleted {printable(message_id)} from {xq}")


@dlq_app.command("purge")
def dlq_purge(
    queue: QueueArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the messages are lost.")] = False,
) -> None:
    """Delete every dead letter of QUEUE, for good."""
    name = check_queue(queue)
    if not yes:
        raise CliError(f"this deletes every message in {xq_name(name)} for good; add --yes", 2)
    with _DeadLetterQueue(name) as dlq:
        purged = dlq.channel.queue_purge(dlq.xq).method.message_count
        xq = dlq.xq
    typer.echo(f"purged {purged} message(s) from {xq}")
