"""The wire contract: raw Dramatiq bodies in, commands or precise parse errors out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from messages import commands as c
from messages.common import CommandBase
from messages.events import EVENT_TYPES
from messages.routing import (
    BY_TYPE,
    ROUTES,
    ParsedMessage,
    ParseError,
    command_bytes,
    encode_command,
    event_routing_key,
    event_type_of,
    parse_message,
)
from messages.schema import all_schemas, command_schemas, event_schemas
from tests.unit.builders import MINIMAL, build, line, payload

COMMANDS = [route.model for route in ROUTES]
#: Generated once: building them is the slow part of this module.
SCHEMAS = all_schemas()
IDS = [cls.__name__ for cls in COMMANDS]


def body(cls: type[CommandBase], *args: Any, **message: Any) -> bytes:
    """A Dramatiq message addressed to ``cls``'s actor, its args as given."""
    route = BY_TYPE[cls.__name__]
    return json.dumps(
        {
            "queue_name": route.queue_name,
            "actor_name": route.actor_name,
            "args": list(args),
            "kwargs": {},
            "options": {},
            "message_id": "m-1",
            "message_timestamp": 1_700_000_000_000,
            **message,
        }
    ).encode()


def parse_error(cls: type[CommandBase], data: dict[str, Any]) -> ParseError:
    parsed = parse_message(body(cls, data))
    assert isinstance(parsed, ParseError), parsed
    return parsed


def refused_fields(cls: type[CommandBase], **fields: Any) -> set[str]:
    """Where validation of ``cls`` with ``fields`` fails (dotted locations)."""
    error = parse_error(cls, payload(cls, **fields))
    assert error.code == "VALIDATION_FAILED"
    return {e["loc"] for e in error.errors}


# ---- valid bodies ----------------------------------------------------------------------


def test_every_command_has_a_minimal_example():
    assert set(MINIMAL) == set(COMMANDS)


@pytest.mark.parametrize("cls", COMMANDS, ids=IDS)
def test_minimal_valid_message_parses_into_its_command(cls: type[CommandBase]):
    # Given
    data = payload(cls)
    # When
    parsed = parse_message(body(cls, data))
    # Then
    assert isinstance(parsed, ParsedMessage), parsed
    assert type(parsed.command) is cls
    assert str(parsed.command.command_id) == data["command_id"]
    assert parsed.route is BY_TYPE[cls.__name__]
    assert parsed.message_id == "m-1"


@pytest.mark.parametrize("cls", COMMANDS, ids=IDS)
def test_encoded_command_parses_back_to_the_same_command(cls: type[CommandBase]):
    # Given
    command = build(cls)
    # When
    message = encode_command(command, message_id="m-7")
    parsed = parse_message(json.dumps(message))
    # Then
    assert isinstance(parsed, ParsedMessage), parsed
    assert parsed.command == command
    assert (parsed.message_id, message["queue_name"]) == ("m-7", parsed.route.queue_name)
    assert parse_message(command_bytes(command)).command == command  # type: ignore[union-attr]


# ---- bodies that are not messages ----------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""], ids=["syntax", "bytes", "empty"])
def test_body_that_is_not_json_is_malformed(raw: bytes):
    parsed = parse_message(raw)
    assert isinstance(parsed, ParseError)
    assert (parsed.code, parsed.command_id) == ("MALFORMED_JSON", None)


@pytest.mark.parametrize(
    "data",
    [
        [],
        "create_order",
        {"args": [{}]},
        {"actor_name": 7, "args": [{}]},
        {"actor_name": "create_order", "args": {}},
        {"actor_name": "create_order"},
    ],
    ids=["list", "string", "no-actor", "actor-not-str", "args-not-list", "no-args"],
)
def test_json_that_is_not_a_dramatiq_message_is_refused(data: Any):
    parsed = parse_message(json.dumps(data))
    assert isinstance(parsed, ParseError)
    assert (parsed.code, parsed.command_id) == ("NOT_A_MESSAGE", None)


def test_message_with_more_than_the_command_argument_is_refused_with_salvaged_id():
    # Given
    data = payload(c.CancelOrder)
    # When
    error = parse_message(body(c.CancelOrder, data, {"extra": True}))
    # Then
    assert isinstance(error, ParseError)
    assert (error.code, str(error.command_id)) == ("NOT_A_MESSAGE", data["command_id"])


def test_message_with_kwargs_is_refused():
    error = parse_message(body(c.CancelOrder, payload(c.CancelOrder), kwargs={"x": 1}))
    assert isinstance(error, ParseError)
    assert error.code == "NOT_A_MESSAGE"


def test_message_for_an_actor_paylink_does_not_have_is_an_unknown_command():
    error = parse_message(body(c.CancelOrder, payload(c.CancelOrder), actor_name="delete_all"))
    assert isinstance(error, ParseError)
    assert error.code == "UNKNOWN_COMMAND"
    assert "delete_all" in error.reason


# ---- schema errors ---------------------------------------------------------------------------


def test_invalid_command_is_refused_with_its_salvaged_command_id():
    # Given
    data = payload(c.CapturePayment, amount=-5)
    # When
    error = parse_error(c.CapturePayment, data)
    # Then
    assert error.code == "VALIDATION_FAILED"
    assert str(error.command_id) == data["command_id"]
    assert error.command_type == "CapturePayment"
    assert {e["loc"] for e in error.errors} == {"amount"}
    assert "amount" in error.reason


@pytest.mark.parametrize("command_id", [None, "not-a-uuid", 42], ids=["missing", "bad", "int"])
def test_invalid_command_without_a_usable_id_has_none_to_salvage(command_id: Any):
    # Given
    data = payload(c.CapturePayment, amount=-5)
    if command_id is None:
        del data["command_id"]
    else:
        data["command_id"] = command_id
    # When
    error = parse_error(c.CapturePayment, data)
    # Then
    assert (error.code, error.command_id) == ("VALIDATION_FAILED", None)
    assert "command_id" in {e["loc"] for e in error.errors}


@pytest.mark.parametrize("cls", COMMANDS, ids=IDS)
def test_unknown_field_is_forbidden(cls: type[CommandBase]):
    assert refused_fields(cls, surprise=1) == {"surprise"}


def test_unknown_field_is_forbidden_inside_nested_objects():
    customer = {"email": "anna@example.com", "vip": True}
    assert refused_fields(c.CreateOrder, customer=customer) == {"customer.vip"}
    lines = [line("A", 100, colour="red")]
    assert refused_fields(c.CreateOrder, order_lines=lines) == {"order_lines.0.colour"}
    actor = {**MINIMAL[c.CancelOrder]["actor"], "admin": True}
    assert refused_fields(c.CancelOrder, actor=actor) == {"actor.admin"}


@pytest.mark.parametrize("customer", [{}, {"name": "Anna"}], ids=["empty", "name-only"])
def test_customer_needs_an_email_or_a_phone(customer: dict[str, str]):
    assert refused_fields(c.CreateOrder, customer=customer) == {"customer"}


@pytest.mark.parametrize(
    "customer",
    [
        {"email": "anna@example.com"},
        {"phone": "+46701234567"},
        {"email": "anna@example.com", "phone": "+46701234567"},
    ],
    ids=["email", "phone", "both-phone-kept-for-the-sms-fallback"],
)
def test_customer_reached_by_email_or_by_phone_is_valid(customer: dict[str, str]):
    assert build(c.CreateOrder, customer=customer).customer.model_dump(exclude_none=True) == (
        customer
    )


@pytest.mark.parametrize("phone", ["0701234567", "+4612", "not a number", "+46 70 123 45 67 89 00"])
def test_phone_that_is_not_an_international_number_is_refused(phone: str):
    assert refused_fields(c.CreateOrder, customer={"phone": phone}) == {"customer.phone"}


def test_international_phone_is_kept_in_e164():
    order = build(c.CreateOrder, customer={"phone": "+46 70-123 45 67"})
    assert order.customer.phone == "+46701234567"


@pytest.mark.parametrize(
    "url", ["http://shop.example/terms", "ftp://shop.example/terms", "shop.example/terms"]
)
def test_terms_url_must_be_https(url: str):
    assert refused_fields(c.ConfigureStore, terms_url=url) == {"terms_url"}


def test_https_terms_url_is_accepted():
    store = build(c.ConfigureStore, terms_url="https://shop.example/terms")
    assert str(store.terms_url) == "https://shop.example/terms"


@pytest.mark.parametrize(
    "amount", [100.0, 100.5, "100", True], ids=["float", "frac", "str", "bool"]
)
def test_amounts_are_strict_integers(amount: Any):
    assert refused_fields(c.CapturePayment, amount=amount) == {"amount"}
    assert refused_fields(c.CheckoutCompleted, authorized_amount=amount) == {"authorized_amount"}
    lines = [line("A", amount)]
    assert refused_fields(c.CreateOrder, order_lines=lines) == {"order_lines.0.unit_price"}


@pytest.mark.parametrize("amount", [0, -1], ids=["zero", "negative"])
def test_capture_amount_must_be_positive(amount: int):
    assert refused_fields(c.CapturePayment, amount=amount) == {"amount"}


# ---- JSON Schema export ---------------------------------------------------------------------


def test_schema_is_exported_for_every_command_and_every_event():
    assert set(command_schemas()) == {cls.__name__ for cls in COMMANDS}
    assert set(event_schemas()) == {cls.__name__ for cls in EVENT_TYPES.values()}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_exported_schema_is_valid_json_schema(name: str):
    Draft202012Validator.check_schema(SCHEMAS[name])


@pytest.mark.parametrize("cls", COMMANDS, ids=IDS)
def test_command_schema_accepts_the_minimal_example_and_forbids_extra_fields(
    cls: type[CommandBase],
):
    validator = Draft202012Validator(SCHEMAS[cls.__name__])
    assert list(validator.iter_errors(payload(cls))) == []
    assert list(validator.iter_errors(payload(cls, surprise=1)))


def test_routing_keys_of_events_are_their_types():
    for routing_key, cls in EVENT_TYPES.items():
        assert cls.model_fields["type"].default == routing_key
        assert "." in routing_key


def test_an_events_routing_key_is_its_store_then_its_type() -> None:
    assert event_routing_key("order.created", "store-1") == "store-1.order.created"
    # a dotted store id stays one word: "store.#" cannot match store "store.a"
    assert event_routing_key("link.sent", "store.a") == "store%2Ea.link.sent"
    assert event_routing_key("order.rejected", None) == "~.order.rejected"
    assert event_type_of(event_routing_key("payment.refunded", "a.b.c")) == "payment.refunded"
