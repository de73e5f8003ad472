"""deploy/rabbitmq: the commands exchange, and who may publish which command to it.

RabbitMQ matches a topic permission's regex against the routing key (unanchored, like
the other permissions); ``writes`` reproduces that. The same definitions are imported
into a scratch vhost of the real broker in tests/integration/test_trust_boundary_broker.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from deploy_contract import DEPLOY

from messages.routing import (
    CHECKOUT_COMMANDS,
    COMMANDS_EXCHANGE,
    INTERNAL_COMMANDS,
    PUBLISHED_ROUTES,
    ROUTES,
)

DEFINITIONS: dict[str, Any] = json.loads(
    (DEPLOY / "rabbitmq" / "definitions.json").read_text(encoding="utf-8")
)
TOPIC = {(p["user"], p["exchange"]): p for p in DEFINITIONS["topic_permissions"]}
PERMISSIONS = {p["user"]: p for p in DEFINITIONS["permissions"]}
MERCHANT = sorted(
    r.command_type for r in PUBLISHED_ROUTES if r.command_type not in CHECKOUT_COMMANDS
)
ALL_TYPES = sorted(r.command_type for r in ROUTES)


def writes(user: str, routing_key: str) -> bool:
    topic = TOPIC.get((user, COMMANDS_EXCHANGE))
    plain = PERMISSIONS[user]["write"] or "^$"
    return (
        re.search(plain, COMMANDS_EXCHANGE) is not None
        and topic is not None
        and re.search(topic["write"] or "^$", routing_key) is not None
    )


def test_the_commands_exchange_is_a_durable_topic_exchange() -> None:
    exchange = next(e for e in DEFINITIONS["exchanges"] if e["name"] == COMMANDS_EXCHANGE)

    assert (exchange["type"], exchange["durable"], exchange["internal"]) == ("topic", True, False)


def test_each_published_command_is_bound_to_its_queue_by_its_type_and_no_internal_one() -> None:
    bindings = {
        b["routing_key"]: b["destination"]
        for b in DEFINITIONS["bindings"]
        if b["source"] == COMMANDS_EXCHANGE
    }

    assert bindings == {r.command_type: r.queue_name for r in PUBLISHED_ROUTES}
    assert not INTERNAL_COMMANDS & set(bindings)


@pytest.mark.parametrize("command_type", ALL_TYPES)
def test_an_upstream_may_publish_exactly_the_merchant_commands(command_type: str) -> None:
    assert writes("paylink-upstream", command_type) == (command_type in MERCHANT)


@pytest.mark.parametrize("command_type", ALL_TYPES)
def test_the_hosted_checkout_may_publish_exactly_the_checkout_commands(command_type: str) -> None:
    assert writes("paylink-checkout", command_type) == (command_type in CHECKOUT_COMMANDS)


@pytest.mark.parametrize("routing_key", ["CreateOrderX", "xCreateOrder", "CreateOrder.x", "#"])
def test_routing_keys_around_a_permitted_one_are_refused(routing_key: str) -> None:
    assert not writes("paylink-upstream", routing_key)


@pytest.mark.parametrize("user", ["paylink-upstream", "paylink-checkout"])
def test_publishers_cannot_write_to_any_queue_directly(user: str) -> None:
    # The default exchange reaches every queue by name; write on it cannot be narrowed.
    assert not re.search(PERMISSIONS[user]["write"], "amq.default")
    assert PERMISSIONS[user]["configure"] == "^$"


def test_workers_may_declare_the_commands_exchange_and_bind_their_queues() -> None:
    worker = PERMISSIONS["paylink-worker"]

    assert re.search(worker["configure"], COMMANDS_EXCHANGE)
    assert re.search(worker["read"], COMMANDS_EXCHANGE)  # queue.bind reads the exchange
    assert not re.search(worker["write"], COMMANDS_EXCHANGE)
