"""Text on the wire refuses control and format characters (Unicode Cc and Cf).

They reach an operator's terminal through `paylink orders` and `dlq list` (``ESC]0;``
retitles it, ``ESC[2J`` clears it) and the customer's email (a right-to-left override
reorders what is shown). Zero-width (non-)joiners stay: Persian and Indic names need them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from messages import commands as c
from messages import events as ev
from messages.routing import ParseError, parse_command, route_for
from tests.unit.builders import T0, actor, line, payload

HOSTILE = {
    "escape": "\x1b]0;owned\x07",
    "clear_screen": "\x1b[2J",
    "c1_csi": "\x9b2J",
    "nul": "\x00",
    "newline": "a\nb",
    "right_to_left_override": "\u202e",
    "zero_width_space": "\u200b",
    "soft_hyphen": "\u00ad",
}


def _with(field: str, text: str) -> tuple[type[c.CommandBase], dict[str, Any], str]:
    """A command whose ``field`` holds ``text``, and where the error is reported."""
    bad_actor = {**actor(), "user_id": f"user{text}x"}
    cases: dict[str, tuple[type[c.CommandBase], dict[str, Any], str]] = {
        "merchant_reference1": (
            c.CreateOrder,
            payload(c.CreateOrder, merchant_reference1=f"PO{text}1"),
            "merchant_reference1",
        ),
        "customer.name": (
            c.CreateOrder,
            payload(c.CreateOrder, customer={"email": "anna@example.com", "name": f"A{text}n"}),
            "customer.name",
        ),
        "line.name": (
            c.CreateOrder,
            payload(c.CreateOrder, order_lines=[line("A", 100, name=f"Shoe{text}s")]),
            "order_lines.0.name",
        ),
        "actor.user_id": (c.CreateOrder, payload(c.CreateOrder, actor=bad_actor), "actor.user_id"),
        "store_name": (
            c.ConfigureStore,
            payload(c.ConfigureStore, store_name=f"Shop{text}x"),
            "store_name",
        ),
        "update.name": (
            c.UpdateCustomerDetails,
            payload(c.UpdateCustomerDetails, name=f"Anna{text}x"),
            "name",
        ),
    }
    return cases[field]


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize(
    "field",
    [
        "merchant_reference1",
        "customer.name",
        "line.name",
        "actor.user_id",
        "store_name",
        "update.name",
    ],
)
def test_control_and_format_characters_are_refused_with_a_clear_error(
    field: str, text: str
) -> None:
    cls, data, where = _with(field, text)

    parsed = parse_command(route_for(cls).actor_name, data)

    assert isinstance(parsed, ParseError), parsed
    assert parsed.code == "VALIDATION_FAILED"
    [error] = parsed.errors
    assert error["loc"] == where
    assert "control or format characters" in error["msg"]
    assert f"U+{ord(next(ch for ch in text if not ch.isprintable())):04X}" in error["msg"]


@pytest.mark.parametrize(
    "name",
    ["Jörg Müller", "می\u200cخواهم", "क्\u200dष", "José 🙂 Niño", "王小明"],
    ids=["umlauts", "persian_zwnj", "devanagari_zwj", "emoji", "chinese"],
)
def test_names_in_any_script_are_accepted(name: str) -> None:
    data = payload(c.CreateOrder, customer={"email": "anna@example.com", "name": name})

    parsed = parse_command("create_order", data)

    assert isinstance(parsed, c.CreateOrder), parsed
    assert parsed.customer.name == name


def test_events_paylink_builds_itself_keep_a_providers_text_as_it_is() -> None:
    # A provider's multi-line error must never make recording its failure impossible.
    event = ev.LinkDeliveryFailed(
        event_id=uuid.uuid4(),
        occurred_at=T0,
        link_id=uuid.uuid4(),
        channel="email",
        provider="sendgrid",
        reason="line one\nline two",
    )

    assert event.reason == "line one\nline two"
