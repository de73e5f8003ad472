"""What a paylink log line may hold, and in which format, whatever the process."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
from collections.abc import Iterator

import pytest
import structlog
from dramatiq.message import Message

from tests.log_scan import Needles, assert_no_leaks
from workers.observability.logs import QUIET_LIBRARIES, configure_logging
from workers.observability.redaction import known_values
from workers.settings import Settings

TOKEN = secrets.token_urlsafe(32)
NEEDLES = Needles(
    tokens=(TOKEN,),
    emails=("jörg.müller@exämple.de",),
    phones=("+46701234567",),
    names=("Jörg Müller",),
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    monkeypatch.delenv("PAYLINK_LOG_FORMAT", raising=False)
    yield
    root.handlers, root.level = saved
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _configure(stream: io.StringIO, log_format: str | None = None) -> None:
    settings = Settings(**({"PAYLINK_LOG_FORMAT": log_format} if log_format else {}))
    configure_logging(settings, stream=stream, cache_loggers=False)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("stream", "chosen"), [(Terminal(), "console"), (io.StringIO(), "json")])
def test_the_format_is_chosen_once_by_the_terminal_and_handed_to_child_processes(
    stream: io.StringIO, chosen: str
) -> None:
    # Given no PAYLINK_LOG_FORMAT, when the first process configures logging
    _configure(stream)
    structlog.get_logger("paylink.run").info("started", process="worker")
    logging.getLogger("dramatiq.worker").warning("a library line")

    # Then both its own and the libraries' lines take the chosen format
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("{") == (chosen == "json") for line in lines)
    # and the processes it starts inherit the choice
    assert os.environ["PAYLINK_LOG_FORMAT"] == chosen


@pytest.mark.usefixtures("restore_logging")
def test_an_explicit_format_wins_over_the_terminal() -> None:
    stream = Terminal()

    _configure(stream, "json")
    structlog.get_logger("paylink").info("hello")

    assert json.loads(stream.getvalue())["event"] == "hello"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("library", ["twilio.http_client", "pika.connection", "urllib3"])
def test_third_party_info_is_quiet_and_their_warnings_are_kept(library: str) -> None:
    stream = io.StringIO()
    _configure(stream, "json")

    logging.getLogger(library).info("-- BEGIN Twilio API Request -- To=+46701234567")
    logging.getLogger(library).warning("connection lost")

    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["event"] == "connection lost"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_failed_message_with_its_traceback_leaves_no_secret(log_format: str) -> None:
    # Given logging as a worker sets it up, and the message being processed
    stream = io.StringIO()
    _configure(stream, log_format)
    command = {
        "command_id": "6f1c2a4e-8a43-4c1f-9d7e-0c5a7b1f2e3d",
        "customer": {"email": "jörg.müller@exämple.de", "name": "Jörg Müller"},
        "token": TOKEN,
    }
    message = Message("paylink.create-order", "create_order", (command,), {}, {})
    reset = known_values.set(("jörg.müller@exämple.de", "Jörg Müller", TOKEN))

    # When Dramatiq logs its failure with a database error quoting the row
    try:
        raise RuntimeError(
            "(psycopg.errors.CheckViolation) check failed\n"
            "DETAIL:  Failing row contains (Jörg Müller, 46701234567).\n"
            "[parameters: {'customer_name': 'Jörg Müller', 'phone': '+46701234567'}]\n"
            f"while sending https://pay.example/l/{TOKEN}"
        )
    except RuntimeError:
        logging.getLogger("dramatiq.worker.WorkerThread").error(
            "Failed to process message %s with unhandled exception.", message, exc_info=True
        )
    finally:
        known_values.reset(reset)

    # Then none of the customer's data or the token is in the line
    text = stream.getvalue()
    assert "Failed to process message create_order(message_id=" in text
    assert "CheckViolation" in text
    assert_no_leaks(text, NEEDLES)
