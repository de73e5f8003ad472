"""docs/asyncapi.yaml: current with messages/, and a structurally valid AsyncAPI 3.0.0 document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from domain.status import PaymentStatus
from messages.events import EVENT_TYPES
from messages.routing import ALL_QUEUES, EVENTS_EXCHANGE, ROUTES, encode_command
from tests.unit.builders import MINIMAL, World, build
from workers.cli.asyncapi import DEFAULT_PATH, build_document, render

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / DEFAULT_PATH


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))


def test_the_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.yaml is out of date: run `make asyncapi` and commit it"
    )


def test_the_yaml_reads_back_as_the_generated_document(document: dict[str, Any]) -> None:
    assert document == json.loads(json.dumps(build_document()))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"external reference {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_every_reference_resolves_within_the_document(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        _resolve(document, ref)
    assert not any("$defs" in ref for ref in refs)


def test_it_is_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "paylink"
    for operation_id, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            # AsyncAPI 3: an operation's messages are those of its channel.
            assert message["$ref"].startswith(channel_ref + "/messages/"), operation_id


def test_every_command_queue_and_command_is_described(document: dict[str, Any]) -> None:
    by_address = {ch["address"]: ch for ch in document["channels"].values()}
    for queue in ALL_QUEUES:
        channel = by_address[queue]
        assert channel["bindings"]["amqp"]["is"] == "queue"
        assert channel["bindings"]["amqp"]["queue"]["name"] == queue
    for route in ROUTES:
        channel = by_address[route.queue_name]
        assert route.command_type in channel["messages"]
        receive = document["operations"][f"receive{route.command_type}"]
        assert receive["action"] == "receive"
        assert route.command_type in document["components"]["schemas"]


def test_every_event_is_described_on_the_topic_exchange(document: dict[str, Any]) -> None:
    by_address = {ch["address"]: ch for ch in document["channels"].values()}
    for event_type, model in EVENT_TYPES.items():
        channel = by_address[event_type]
        exchange = channel["bindings"]["amqp"]["exchange"]
        assert (exchange["name"], exchange["type"]) == (EVENTS_EXCHANGE, "topic")
        assert model.__name__ in channel["messages"]
        assert document["operations"][f"send{model.__name__}"]["action"] == "send"


def _validator(document: dict[str, Any], schema_name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return Draft202012Validator(schema)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.command_type)
def test_the_exact_bytes_of_each_command_match_its_message_schema(
    document: dict[str, Any], route: Any
) -> None:
    message = json.loads(json.dumps(encode_command(build(route.model))))
    validator = _validator(document, f"{route.command_type}Message")
    assert list(validator.iter_errors(message)) == []
    # and a command missing a required field does not
    broken = json.loads(json.dumps(message))
    fields = route.model.model_fields
    required = next(k for k in MINIMAL[route.model] if fields[k].is_required())
    del broken["args"][0][required]
    assert list(validator.iter_errors(broken)) != []


def test_events_of_a_whole_order_lifecycle_match_their_schemas(document: dict[str, Any]) -> None:
    # Given an order taken from creation to a partial refund (in memory)
    world = World().in_payment_status(PaymentStatus.PART_REFUNDED)
    events = world.db.events
    assert len({e.type for e in events}) >= 6
    # Then every event as published validates against its schema
    for event in events:
        validator = _validator(document, type(event).__name__)
        assert list(validator.iter_errors(json.loads(event.model_dump_json()))) == []
