"""Strict types on the wire: what a payments contract must never guess.

Commands arrive as JSON, so UUIDs, date-times and enum values come as strings and
must parse; but no string is read as a number or a boolean, and no float as an integer.
"""

from __future__ import annotations

from typing import Any

import pytest

from messages import commands as c
from messages.routing import ParseError, parse_command, route_for
from tests.unit.builders import line, payload


def _refused(cls: type[c.CommandBase], data: dict[str, Any]) -> set[str]:
    parsed = parse_command(route_for(cls).actor_name, data)
    assert isinstance(parsed, ParseError), parsed
    assert parsed.code == "VALIDATION_FAILED"
    return {e["loc"] for e in parsed.errors}


@pytest.mark.parametrize("value", ["yes", "true", "1", 1, 0, "on"])
def test_auto_capture_must_be_a_json_boolean(value: Any) -> None:
    assert _refused(c.CreateOrder, payload(c.CreateOrder, auto_capture=value)) == {"auto_capture"}


@pytest.mark.parametrize("value", ["2", 2.0, 2.5, True])
def test_a_quantity_must_be_a_json_integer(value: Any) -> None:
    data = payload(c.CreateOrder, order_lines=[line("A", 1000, quantity=value)])

    assert _refused(c.CreateOrder, data) == {"order_lines.0.quantity"}


@pytest.mark.parametrize("value", ["500", 500.0, "5e2"])
def test_an_amount_must_be_a_json_integer(value: Any) -> None:
    assert _refused(c.CapturePayment, payload(c.CapturePayment, amount=value)) == {"amount"}


def test_a_text_field_is_not_filled_from_a_number() -> None:
    data = payload(c.CreateOrder, merchant_reference1=1001)

    assert _refused(c.CreateOrder, data) == {"merchant_reference1"}


def test_uuids_date_times_and_enum_values_arrive_as_strings_and_parse() -> None:
    data = payload(c.CreateOrder, auto_capture=True)

    parsed = parse_command(route_for(c.CreateOrder).actor_name, data)

    assert isinstance(parsed, c.CreateOrder)
    assert str(parsed.command_id) == data["command_id"]
    assert parsed.issued_at.isoformat() == data["issued_at"]
    assert parsed.actor.role.value == data["actor"]["role"]
    assert parsed.auto_capture is True
