"""deploy/rabbitmq: the topology paylink's broker declares, and least-privilege users.

RabbitMQ matches a permission regex anywhere in the resource name (unanchored), and
treats "" like "^$"; `allowed` reproduces that, so the checks below mean what the broker
would do. The same rules were exercised once against a real broker (RabbitMQ 3.10.8,
definitions imported into a scratch vhost): see deploy/README.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import pytest
from deploy_contract import (
    COMMAND_QUEUES,
    DEPLOY,
    EVENTS_EXCHANGE,
    UPSTREAM_EVENTS_QUEUE,
    all_command_queue_names,
    dq,
    xq,
)

from messages.routing import COMMANDS_EXCHANGE
from workers.runtime.broker import XQ_ARGUMENTS, queue_arguments

Operation = Literal["configure", "write", "read"]

DEFINITIONS: dict[str, Any] = json.loads(
    (DEPLOY / "rabbitmq" / "definitions.json").read_text(encoding="utf-8")
)
VHOST = "paylink"
QUEUES = {q["name"]: q for q in DEFINITIONS["queues"]}
PERMISSIONS = {p["user"]: p for p in DEFINITIONS["permissions"]}
#: The default exchange's name in permission checks.
DEFAULT_EXCHANGE = "amq.default"
#: Names nobody outside paylink's own queues should be able to touch.
FOREIGN_NAMES = (
    "evil",
    "amq.topic",
    "paylink.create-orderX",
    "xpaylink.checkout",
    "paylink.checkout.XQ.copy",
    "paylink.unknown",
)


def allowed(user: str, operation: Operation, resource: str) -> bool:
    pattern = PERMISSIONS[user][operation] or "^$"
    return re.search(pattern, resource) is not None


def test_architecture_names_six_command_queues() -> None:
    assert len(COMMAND_QUEUES) == 6


def test_vhost_paylink_defaults_to_quorum_queues() -> None:
    # Dramatiq declares the .XQ queues without x-queue-type; with this default RabbitMQ
    # fills in "quorum" and the redeclare matches the quorum queues defined here.
    (vhost,) = DEFINITIONS["vhosts"]
    assert vhost["name"] == VHOST
    assert vhost["default_queue_type"] == "quorum"
    assert vhost["metadata"]["default_queue_type"] == "quorum"


def test_every_queue_of_the_architecture_exists_and_nothing_else() -> None:
    assert set(QUEUES) == all_command_queue_names() | {UPSTREAM_EVENTS_QUEUE}
    assert all(
        q["vhost"] == VHOST and q["durable"] and not q["auto_delete"] for q in QUEUES.values()
    )


@pytest.mark.parametrize("queue", COMMAND_QUEUES)
def test_command_queue_and_its_delay_queue_are_quorum_and_dead_letter_to_xq(queue: str) -> None:
    for name in (queue, dq(queue)):
        arguments = QUEUES[name]["arguments"]
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-dead-letter-exchange"] == ""
        assert arguments["x-dead-letter-routing-key"] == xq(queue)


@pytest.mark.parametrize("queue", COMMAND_QUEUES)
def test_command_queue_and_its_delay_queue_have_a_delivery_limit(queue: str) -> None:
    for name in (queue, dq(queue)):
        assert 1 <= QUEUES[name]["arguments"]["x-delivery-limit"] <= 100


@pytest.mark.parametrize("queue", COMMAND_QUEUES)
def test_queue_arguments_equal_what_paylink_declares_with_quorum_queues(queue: str) -> None:
    # Workers and relay redeclare every queue (PAYLINK_QUORUM_QUEUES=true); any difference
    # makes RabbitMQ refuse with PRECONDITION_FAILED. The .XQ is declared without
    # x-queue-type, which the vhost default fills in.
    expected = queue_arguments(queue, quorum=True)
    assert QUEUES[queue]["arguments"] == expected
    assert QUEUES[dq(queue)]["arguments"] == expected
    assert QUEUES[xq(queue)]["arguments"] == {"x-queue-type": "quorum", **XQ_ARGUMENTS}


@pytest.mark.parametrize("queue", COMMAND_QUEUES)
def test_dead_lettering_policy_covers_command_and_delay_queues_not_dead_letters(
    queue: str,
) -> None:
    (policy,) = DEFINITIONS["policies"]

    assert policy["vhost"] == VHOST
    assert policy["apply-to"] in {"queues", "quorum_queues"}
    # At-least-once: a dead letter leaves its queue only once the .XQ confirmed it (needs
    # overflow reject-publish).
    assert policy["definition"] == {
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    }
    assert re.search(policy["pattern"], queue)
    assert re.search(policy["pattern"], dq(queue))
    assert not re.search(policy["pattern"], xq(queue))
    assert not re.search(policy["pattern"], UPSTREAM_EVENTS_QUEUE)


def test_events_go_to_a_durable_topic_exchange_bound_to_the_upstream_queue() -> None:
    exchanges = {e["name"]: e for e in DEFINITIONS["exchanges"]}
    (binding,) = [b for b in DEFINITIONS["bindings"] if b["source"] == EVENTS_EXCHANGE]
    exchange = exchanges[EVENTS_EXCHANGE]

    assert (exchange["name"], exchange["type"], exchange["durable"]) == (
        EVENTS_EXCHANGE,
        "topic",
        True,
    )
    assert exchange["vhost"] == VHOST
    assert binding == {
        "source": EVENTS_EXCHANGE,
        "vhost": VHOST,
        "destination": UPSTREAM_EVENTS_QUEUE,
        "destination_type": "queue",
        # One store's events (<store_id>.<event type>): never "#", every store's
        "routing_key": "example-store.#",
        "arguments": {},
    }


def test_users_carry_no_password_and_only_the_expected_tags() -> None:
    users = {u["name"]: u for u in DEFINITIONS["users"]}

    assert set(users) == {
        "paylink-worker",
        "paylink-upstream",
        "paylink-checkout",
        "paylink-monitor",
        "paylink-admin",
    }
    assert all(u["password_hash"] == "" and "password" not in u for u in users.values())
    assert users["paylink-worker"]["tags"] == []
    assert users["paylink-upstream"]["tags"] == []
    assert users["paylink-monitor"]["tags"] == ["monitoring"]
    assert set(PERMISSIONS) == set(users)
    assert all(p["vhost"] == VHOST for p in PERMISSIONS.values())


def test_every_restricted_permission_regex_is_anchored() -> None:
    for user in ("paylink-worker", "paylink-upstream", "paylink-monitor"):
        for operation in ("configure", "write", "read"):
            pattern = PERMISSIONS[user][operation]
            assert re.fullmatch(r"\^.*\$", pattern), (user, operation)


@pytest.mark.parametrize("queue", sorted(all_command_queue_names()))
def test_upstream_cannot_read_or_configure_any_command_queue(queue: str) -> None:
    assert not allowed("paylink-upstream", "read", queue)
    assert not allowed("paylink-upstream", "configure", queue)


def test_upstream_publishes_commands_through_the_commands_exchange_only() -> None:
    # Write on the default exchange cannot be narrowed by routing key: it would reach
    # every queue (internal, retry and dead-letter ones too).
    assert allowed("paylink-upstream", "write", COMMANDS_EXCHANGE)
    assert not allowed("paylink-upstream", "write", DEFAULT_EXCHANGE)
    assert not allowed("paylink-upstream", "write", EVENTS_EXCHANGE)
    assert not any(allowed("paylink-upstream", "write", n) for n in FOREIGN_NAMES)


def test_upstream_reads_only_its_event_queue() -> None:
    assert allowed("paylink-upstream", "read", UPSTREAM_EVENTS_QUEUE)
    assert not allowed("paylink-upstream", "configure", UPSTREAM_EVENTS_QUEUE)
    assert not allowed("paylink-upstream", "read", EVENTS_EXCHANGE)
    assert not any(allowed("paylink-upstream", "read", n) for n in FOREIGN_NAMES)


@pytest.mark.parametrize("queue", COMMAND_QUEUES)
def test_worker_may_do_what_dramatiq_does_with_its_queues(queue: str) -> None:
    # queue.declare with a dead-letter exchange needs configure + read on the queue and
    # write on the dead-letter exchange (the default one); consuming needs read; retries
    # and follow-up commands publish through the default exchange.
    for name in (queue, dq(queue), xq(queue)):
        assert allowed("paylink-worker", "configure", name)
        assert allowed("paylink-worker", "read", name)
    assert allowed("paylink-worker", "write", DEFAULT_EXCHANGE)


def test_worker_declares_and_publishes_to_the_events_exchange() -> None:
    # The relay declares the exchange (idempotently) before publishing events to it.
    assert allowed("paylink-worker", "configure", EVENTS_EXCHANGE)
    assert allowed("paylink-worker", "write", EVENTS_EXCHANGE)
    assert not allowed("paylink-worker", "read", EVENTS_EXCHANGE)


def test_worker_cannot_configure_or_read_anything_else() -> None:
    others = (*FOREIGN_NAMES, UPSTREAM_EVENTS_QUEUE, DEFAULT_EXCHANGE)
    for name in others:
        assert not allowed("paylink-worker", "configure", name), name
    for name in (*FOREIGN_NAMES, UPSTREAM_EVENTS_QUEUE):
        assert not allowed("paylink-worker", "read", name), name
        assert not allowed("paylink-worker", "write", name), name


def test_monitor_user_may_only_look() -> None:
    names = (
        *sorted(all_command_queue_names()),
        UPSTREAM_EVENTS_QUEUE,
        EVENTS_EXCHANGE,
        DEFAULT_EXCHANGE,
    )
    for operation in ("configure", "write", "read"):
        assert not any(allowed("paylink-monitor", operation, n) for n in names)


def test_rabbitmq_conf_imports_the_definitions_file_compose_mounts() -> None:
    conf = dict(
        line.split(" = ", 1)
        for line in (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )

    assert conf["definitions.import_backend"] == "local_filesystem"
    assert conf["definitions.local.path"] == "/etc/rabbitmq/definitions.json"
    assert conf["definitions.skip_if_unchanged"] == "true"
    assert conf["prometheus.tcp.port"] == "15692"
