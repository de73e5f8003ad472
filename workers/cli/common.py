"""What every `paylink` command shares: settings, consoles, tables and one-line errors.

A person at a terminal gets one red line saying what is wrong and an exit code
(1 for a failure, 2 for a usage error), never a traceback. ``PAYLINK_DEBUG=1``
lets exceptions through when a developer wants the traceback.

Stored text (a customer's name, an actor's user id, a dead letter's body) reaches the
operator's terminal only through :func:`printable`: a control character in it
(``ESC]0;`` retitles a terminal, ``ESC[2J`` clears it) is shown as its escape, never
sent. Tables keep ids whole: on a terminal their columns never fold, and piped into a
file or ``grep`` they are plain tab-separated lines.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

import pika
import pydantic
import sqlalchemy.exc
import typer
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from typer.core import TyperGroup

from messages.routing import ALL_QUEUES
from workers.runtime.amqp import broker_location, connect
from workers.settings import Settings, get_settings
from workers.storage.engine import make_engine


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def printable(value: object) -> str:
    """``value`` as text a terminal shows and never obeys: control and format characters
    (Unicode Cc, Cf, line separators) appear as their escapes (``\\x1b``, ``\\u202e``);
    ``None`` is ``-``."""
    text = "-" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def note(message: str) -> None:
    """A remark for the person running the command (stderr, so stdout stays parseable)."""
    stderr().print(f"[dim]{escape(printable(message))}[/dim]")


def one_line(text: str, limit: int = 500) -> str:
    text = printable(re.sub(r"\s+", " ", text).strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_error(message: str) -> None:
    stderr().print(f"[bold red]error:[/bold red] [red]{escape(one_line(message))}[/red]")


def interactive() -> bool:
    """Whether stdout is a person's terminal (rich tables) or a pipe or file (plain lines)."""
    return sys.stdout.isatty()


def emit_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    ids: Sequence[str] = (),
    right: Sequence[str] = (),
    caption: str | None = None,
) -> None:
    """A table of ``rows`` under ``headers``; every cell through :func:`printable`.

    On a terminal: a rich table whose ``ids`` columns are as wide as their longest value
    and never wrap (other columns fold). Otherwise: the title, then tab-separated header
    and rows, then a blank line, so ``grep`` finds a whole id on its row.
    """
    cells = [[printable(v) for v in row] for row in rows]
    if not interactive():
        lines = [printable(title), "\t".join(headers), *("\t".join(row) for row in cells)]
        typer.echo("\n".join(lines) + "\n")
        if caption:
            note(caption)
        return
    table = Table(
        title=escape(printable(title)),
        title_justify="left",
        caption=escape(caption) if caption else None,
        caption_justify="left",
    )
    for i, header in enumerate(headers):
        justify: JustifyMethod = "right" if header in right else "left"
        if header in ids:
            width = max([len(header), *(len(row[i]) for row in cells)])
            table.add_column(header, no_wrap=True, min_width=width, justify=justify)
        else:
            table.add_column(header, overflow="fold", justify=justify)
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    stdout().print(table)


@contextmanager
def progress(total: int, what: str) -> Iterator[Any]:
    """A progress bar on stderr while ``what`` goes through ``total`` items (a terminal
    only: piped, it stays quiet); yields ``advance()``."""
    console = stderr()
    if not console.is_terminal or total <= 0:
        yield lambda: None
        return
    with Progress(
        TextColumn(escape(what)), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def load_settings() -> Settings:
    try:
        return get_settings()
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise CliError(f"invalid configuration: {problems}") from None


def check_queue(name: str) -> str:
    """``name`` if it is a command queue (a trailing .XQ is accepted), else a clear error."""
    queue = name.strip().removesuffix(".XQ")
    if queue not in ALL_QUEUES:
        raise CliError(f"unknown queue {name!r}; valid queues: {', '.join(ALL_QUEUES)}", 2)
    return queue


def split_queues(values: Sequence[str]) -> list[str]:
    """Queue names from options given as ``a,b`` and/or repeated, checked, in order."""
    names = [n for value in values for n in value.split(",") if n.strip()]
    return list(dict.fromkeys(check_queue(n) for n in names))


def open_broker(settings: Settings, *, timeout: float = 5.0) -> pika.BlockingConnection:
    try:
        return connect(settings.broker_url, timeout=timeout)
    except pika.exceptions.AMQPConnectionError as exc:
        raise CliError(
            f"cannot connect to RabbitMQ at {broker_location(settings.broker_url)} "
            f"({type(exc).__name__}); start it or set BROKER_URL"
        ) from None


#: What a database error means for the person at the terminal: (pattern, hint).
_DATABASE_HINTS: tuple[tuple[str, str], ...] = (
    (
        r'database "[^"]+" does not exist',
        "the server has no such database: create it (createdb) or fix DATABASE_URL; "
        "`paylink migrate` creates tables, not databases",
    ),
    (
        r"no such table|relation \S+ does not exist|column \S+ does not exist",
        "the schema is missing or older than this paylink: run `paylink migrate`",
    ),
    (
        r"connection refused|could not connect|timeout expired|name or service not known",
        "is PostgreSQL running where DATABASE_URL points?",
    ),
    (
        r"password authentication failed|role \S+ does not exist",
        "check DATABASE_URL's user and password",
    ),
    (
        r"unable to open database file",
        "the SQLite file's directory does not exist or is not writable",
    ),
)


def database_hint(reason: str) -> str:
    for pattern, hint in _DATABASE_HINTS:
        if re.search(pattern, reason, re.IGNORECASE):
            return f"; {hint}"
    return ""


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code for an exception that reached the command line."""
    if isinstance(exc, CliError):
        return exc.message, exc.code
    exit_code = getattr(exc, "exit_code", None)
    if hasattr(exc, "format_message") and isinstance(exit_code, int):
        # Typer's (Click's) usage errors: bad option, missing argument, unknown command.
        message = str(exc.format_message())
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and exit_code == 2:
            message += f" (see '{ctx.command_path} --help')"
        return message, exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, pydantic.ValidationError):
        return f"invalid input: {exc.errors(include_url=False)[0]['msg']}", 1
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"database error: {reason}{database_hint(reason)}", 1
    if isinstance(exc, sqlalchemy.exc.ArgumentError):
        return f"bad DATABASE_URL: {exc}", 1
    if isinstance(exc, pika.exceptions.AMQPConnectionError):
        return f"cannot connect to RabbitMQ ({type(exc).__name__}); start it or set BROKER_URL", 1
    if isinstance(exc, pika.exceptions.AMQPError):
        return f"RabbitMQ error: {type(exc).__name__}: {exc}", 1
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1
    if isinstance(exc, RuntimeError) and type(exc).__name__ == "Abort":
        return "aborted", 1
    return f"unexpected error ({type(exc).__name__}): {exc}", 1


class _HelpShown(Protocol):
    """What click's and Typer's ``NoArgsIsHelpError`` both have."""

    exit_code: int

    def format_message(self) -> str: ...


class PaylinkGroup(TyperGroup):
    """The root command: turns every escaping exception into one red line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode or os.environ.get("PAYLINK_DEBUG") == "1":
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except Exception as exc:
            # Typer raises its own copy of click's exception: known by name, not by class.
            if type(exc).__name__ == "NoArgsIsHelpError":
                shown = cast(_HelpShown, exc)
                # The help was printed already (rich), or is the message (plain).
                text = shown.format_message()
                if text.strip():
                    stderr().print(escape(text))
                sys.exit(shown.exit_code)
            message, code = describe(exc)
            print_error(message)
            sys.exit(code)
        except KeyboardInterrupt:
            print_error("interrupted")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def open_database() -> Engine:
    """The database to read; a SQLite file that is not there is an error, not created."""
    url = load_settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.exists():
            raise CliError(
                f"no database at {path}: run `paylink migrate` to create it there, "
                "or point DATABASE_URL at yours"
            )
    return make_engine(url)
