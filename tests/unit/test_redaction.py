"""One redaction for log lines, provider errors and retry tracebacks."""

from __future__ import annotations

import io
import logging
import secrets

import pytest
from dramatiq.broker import MessageProxy
from dramatiq.message import Message

from tests.log_scan import Needles, leaks
from workers.observability.logs import MessageSummary, NoMessageArguments
from workers.observability.redaction import known_values, personal_values, redact, redact_value
from workers.providers.failures import classify

TOKEN = secrets.token_urlsafe(32)
COMMAND_ID = "6f1c2a4e-8a43-4c1f-9d7e-0c5a7b1f2e3d"
ORDER_ID = "0b0e7c1e-0d3c-4a4e-9c55-7f0d2a9b8c11"


@pytest.mark.parametrize(
    "email",
    [
        "anna@example.com",
        "jörg.müller@exämple.de",
        "用户@例子.广告",
        "o'brien+tag@sub.example.co.uk",
    ],
)
def test_email_addresses_are_masked_in_any_script(email: str) -> None:
    assert email not in redact(f"mailbox {email} is full")
    assert email.partition("@")[0] not in redact(f"mailbox <{email}> is full")


@pytest.mark.parametrize(
    "phone",
    ["+46701234567", "46701234567", "0701234567", "070-123 45 67", "+46 70-123 45 67"],
)
def test_phone_numbers_are_masked_with_or_without_plus(phone: str) -> None:
    assert phone not in redact(f"to {phone} failed")


@pytest.mark.parametrize(
    "text",
    [
        f"command {COMMAND_ID}",
        "command 12345678-1234-4234-8234-123456789012",  # all-digit UUID parts stay
        "at 2026-11-21T12:00:00.432936+00:00",
        "error 21211 at 2025-07-15",
        "Retrying message in 300000 milliseconds",
        "digest " + "ab" * 32,
        "metric paylink_outbox_oldest_unsent_age_seconds_total",
    ],
)
def test_ids_times_codes_and_names_of_things_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_link_token_is_masked_in_a_url_and_alone() -> None:
    text = redact(f"GET https://pay.example/l/{TOKEN} and token {TOKEN}")

    assert TOKEN not in text
    assert TOKEN[8:-8] not in text


def test_names_are_masked_where_a_dump_names_their_field() -> None:
    dumped = "{'name': 'Jörg Müller', \"customer_name\": \"Ann Lee\", email=None}"

    text = redact(dumped)

    assert "Jörg" not in text
    assert "Ann Lee" not in text
    assert "'name': ***" in text


def test_values_of_the_message_being_processed_are_masked_anywhere() -> None:
    reset = known_values.set(("Jörg Müller",))
    try:
        text = redact("customer Jörg Müller refused")
    finally:
        known_values.reset(reset)

    assert text == "customer *** refused"


def test_sql_parameters_and_failing_rows_are_hidden() -> None:
    error = (
        '(psycopg.errors.CheckViolation) new row for relation "orders" violates check\n'
        "DETAIL:  Failing row contains (1, Jörg Müller, 42).\n"
        "[SQL: INSERT INTO orders (name) VALUES (%(name)s)]\n"
        "[parameters: {'n': 'Jörg Müller'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )

    text = redact(error)

    assert "Jörg" not in text
    assert "[SQL: INSERT INTO orders (name) VALUES (%(name)s)]" in text
    assert "DETAIL: hidden" in text
    assert "[parameters: hidden]" in text


def test_terminal_control_characters_are_escaped() -> None:
    assert redact("actor '\x1b]0;owned\x07\x1b[2J'") == "actor '\\x1b]0;owned\\x07\\x1b[2J'"


def test_structured_values_mask_sensitive_keys_whole() -> None:
    value = {"name": "Ann", "nested": [{"phone": "+46701234567"}], "outcome": "accepted"}

    assert redact_value(value) == {
        "name": "***",
        "nested": [{"phone": "***"}],
        "outcome": "accepted",
    }


def test_personal_values_of_a_command_are_its_names_contacts_and_token() -> None:
    command = {
        "command_id": COMMAND_ID,
        "customer": {"email": "a@b.se", "name": "Ann Lee", "phone": None},
        "token": TOKEN,
        "order_lines": [{"name": "Shoe"}],
    }

    assert set(personal_values(command)) == {"a@b.se", "Ann Lee", TOKEN, "Shoe"}


def test_a_provider_error_quoting_the_recipient_and_link_is_scrubbed() -> None:
    needles = Needles(tokens=(TOKEN,), emails=("jörg.müller@exämple.de",))
    text = f"Mailbox jörg.müller@exämple.de rejected https://pay.example/l/{TOKEN}"

    failure = classify(
        "sendgrid",
        503,
        text,
        headers={},
        recipient="jörg.müller@exämple.de",
        provider_code="503",
    )

    assert leaks(str(failure), needles) == []


def test_dramatiq_messages_are_logged_as_ids_never_as_their_arguments() -> None:
    message = Message(
        queue_name="paylink.send-link",
        actor_name="send_payment_link",
        args=({"command_id": COMMAND_ID, "order_id": ORDER_ID, "token": TOKEN},),
        kwargs={},
        options={},
        message_id="m-1",
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(NoMessageArguments())
    logger = logging.getLogger("test.redaction.dramatiq")
    logger.addHandler(handler)
    try:
        logger.error("Failed to process message %s with unhandled exception.", message)
        logger.error("Message %s was skipped.", MessageProxy(message))
    finally:
        logger.removeHandler(handler)

    lines = stream.getvalue()
    assert TOKEN not in lines
    expected = f"send_payment_link(message_id=m-1, command_id={COMMAND_ID}, order_id={ORDER_ID})"
    assert lines.splitlines() == [
        f"Failed to process message {expected} with unhandled exception.",
        f"Message {expected} was skipped.",
    ]


def test_a_hostile_command_id_is_not_copied_into_the_summary() -> None:
    message = Message("q", "create_order", ({"command_id": "anna@example.com"},), {}, {})

    assert "anna" not in str(MessageSummary(message))


def test_a_customers_details_are_known_even_behind_a_thousand_order_lines() -> None:
    command = {
        "order_lines": [{"name": f"Item {i}"} for i in range(1000)],
        "customer": {"email": "jörg.müller@exämple.de", "name": "Jörg Müller"},
    }

    values = personal_values(command)

    assert {"jörg.müller@exämple.de", "Jörg Müller"} <= set(values)
    assert len(values) <= 70
    assert list(values) == sorted(values, key=len, reverse=True)
