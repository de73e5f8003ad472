"""Untrusted bodies decode to a message or a reason, never to an exception."""

from __future__ import annotations

import json
import uuid

import pytest

from messages.routing import (
    MAX_INTEGER_DIGITS,
    MAX_NESTING,
    DecodedBody,
    ParseError,
    decode_body,
    parse_message,
)

NESTED = b'{"m":"x","x":' + b"[" * 5000 + b"]" * 5000 + b"}"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (NESTED, "RecursionError"),
        (b"\xff\xfe", "UnicodeDecodeError"),
        (b'{"a": ', "JSONDecodeError"),
    ],
    ids=["nested_5000_deep", "not_utf8", "truncated"],
)
def test_a_body_that_cannot_be_decoded_gives_a_reason(body: bytes, said: str) -> None:
    decoded = decode_body(body)

    assert isinstance(decoded, ParseError)
    assert decoded.code == "MALFORMED_JSON"
    assert said in decoded.reason


def test_an_integer_longer_than_any_field_is_replaced_and_named() -> None:
    decoded = decode_body(b'{"a": -' + b"9" * 5000 + b', "b": 12}')

    assert isinstance(decoded, DecodedBody)
    assert decoded.data == {"a": "<integer of 5000 digits>", "b": 12}
    assert decoded.problem == f"an integer of 5000 digits (at most {MAX_INTEGER_DIGITS} are valid)"


def test_integers_up_to_the_int64_width_decode_as_integers() -> None:
    decoded = decode_body(b'{"a": ' + b"9" * MAX_INTEGER_DIGITS + b"}")

    assert isinstance(decoded, DecodedBody)
    assert decoded.data == {"a": int("9" * MAX_INTEGER_DIGITS)}
    assert decoded.problem == ""


def test_nesting_deeper_than_any_message_is_a_problem_but_decodes() -> None:
    deep = decode_body(b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1))
    shallow = decode_body(b"[" * MAX_NESTING + b"]" * MAX_NESTING)

    assert isinstance(deep, DecodedBody)
    assert deep.problem == f"nested deeper than {MAX_NESTING} levels"
    assert isinstance(shallow, DecodedBody)
    assert shallow.problem == ""


def test_parse_message_salvages_the_command_id_beside_an_oversized_integer() -> None:
    command_id = str(uuid.uuid4())
    text = json.dumps(
        {
            "queue_name": "paylink.order-management",
            "actor_name": "capture_payment",
            "args": [{"command_id": command_id, "amount": "HUGE"}],
            "kwargs": {},
            "options": {},
            "message_id": "m-1",
            "message_timestamp": 0,
        }
    ).replace('"HUGE"', "1" * 5000)

    parsed = parse_message(text.encode())

    assert isinstance(parsed, ParseError)
    assert (parsed.code, str(parsed.command_id)) == ("NOT_A_MESSAGE", command_id)


def test_parse_message_answers_a_nested_body_with_a_reason() -> None:
    parsed = parse_message(NESTED)

    assert isinstance(parsed, ParseError)
    assert parsed.code == "MALFORMED_JSON"
