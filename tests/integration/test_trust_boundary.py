"""Hostile bodies on the real RabbitMQ: each gets its answer, and the queue keeps moving.

Every test publishes the hostile message first and a valid command behind it on the
same queue: the valid one's event proves the consumer carried on, the dead letter (or
the rejection) proves the hostile one was answered, not dropped.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from sqlalchemy import create_engine

from messages.routing import (
    BY_ACTOR,
    COMMANDS_EXCHANGE,
    DEAD_LETTER_REASON_HEADER,
    Queue,
    command_bytes,
)
from workers.devtools.commands import ADMIN, STORE, configure_store, create_order
from workers.devtools.harness import Harness, now, token_from_outbox
from workers.runtime.consumer import MAX_BACKOFF_MS
from workers.runtime.grants import grant
from workers.settings import DEFAULT_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration

Q = Queue.STORE_CONFIG


def _envelope(args: list[Any], **changes: Any) -> dict[str, Any]:
    return {
        "queue_name": Q,
        "actor_name": "configure_store",
        "args": args,
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
        **changes,
    }


def _store_command() -> dict[str, Any]:
    return configure_store().model_dump(mode="json")


def _dead_letters(h: Harness, n: int) -> list[tuple[str, bytes]]:
    """The reasons and bodies of the first ``n`` dead letters of the queue."""
    h.wait_for(lambda: h.queue_depth(f"{Q}.XQ") >= n, what=f"{n} dead letters on {Q}.XQ")
    found = []
    for _ in range(n):
        got = h.get_dead_letter(Q)
        assert got is not None
        props, body = got
        found.append((props.headers[DEAD_LETTER_REASON_HEADER], body))
    return found


def _then_a_valid_command_is_processed(h: Harness) -> None:
    valid = configure_store()
    h.publish(valid)
    h.wait_event("store.configured", command_id=valid.command_id)


def _consumer_never_restarted(h: Harness) -> None:
    assert "Consumer encountered" not in h.logs()
    assert "Restarting consumer" not in h.logs()


def test_deeply_nested_and_oversized_bodies_are_dead_lettered_and_the_queue_moves_on(
    harness: Harness,
) -> None:
    # Given a worker, and a body nested 5000 deep (a RecursionError for any JSON parser
    # of Python) and one just over the size limit, queued before a valid command
    h = harness
    h.start_all()
    nested = b'{"m":"x","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    oversized = json.dumps(
        _envelope([{**_store_command(), "store_name": "x" * DEFAULT_MAX_MESSAGE_BYTES}])
    ).encode()
    h.publish_raw(Q, nested)
    h.publish_raw(Q, oversized)

    # When the valid command follows, then it is processed
    _then_a_valid_command_is_processed(h)

    # and both hostile bodies are dead letters with their reasons
    (first, body1), (second, body2) = _dead_letters(h, 2)
    assert first.startswith("MALFORMED_MESSAGE")
    assert "RecursionError" in first
    assert body1 == nested
    assert second.startswith("MESSAGE_TOO_LARGE")
    assert str(len(oversized)) in second
    assert body2 == oversized
    _consumer_never_restarted(h)


def test_a_size_limit_set_lower_applies(harness_factory: Callable[..., Harness]) -> None:
    # Given workers limited to 64 kB
    h = harness_factory(PAYLINK_MAX_MESSAGE_BYTES=str(64 * 1024))
    h.start_all()
    command = _store_command()
    body = json.dumps(_envelope([{**command, "store_name": "y" * 70_000}])).encode()

    # When a 70 kB message arrives
    h.publish_raw(Q, body)

    # Then it is dead-lettered as too large, not parsed (a 255-character name would be
    # a rejection), and the valid command behind it goes through
    _then_a_valid_command_is_processed(h)
    [(reason, _body)] = _dead_letters(h, 1)
    assert reason.startswith("MESSAGE_TOO_LARGE")
    assert not h.events_for(uuid.UUID(command["command_id"]))


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda e: {**e, "priority": 9}, "envelope keys not accepted: priority"),
        (
            lambda e: {**e, "args": [{**e["args"][0], "store_name": int("9" * 20)}]},
            "an integer of 20 digits",
        ),
        (
            lambda e: {**e, "message_timestamp": int("1" * 4300)},
            "an integer of 4300 digits",
        ),
    ],
    ids=["extra_envelope_key", "twenty_digit_integer", "python_limit_integer"],
)
def test_a_bad_envelope_around_a_readable_command_id_is_answered_with_a_rejection(
    harness: Harness, spoil: Any, said: str
) -> None:
    # Given a command whose envelope is spoiled but whose command_id can be read
    h = harness
    h.start_all()
    command = _store_command()
    body = json.dumps(spoil(_envelope([command]))).encode()

    # When it is published
    h.publish_raw(Q, body)

    # Then it is rejected as invalid, naming the problem, and the queue moves on
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))
    assert rejected["code"] == "VALIDATION_FAILED"
    assert said in rejected["message"]
    assert rejected["store_id"] == command["store_id"]
    _then_a_valid_command_is_processed(h)
    assert h.queue_depth(f"{Q}.XQ") == 0


def test_an_integer_of_five_thousand_digits_is_answered_too(harness: Harness) -> None:
    # Given a command id beside an integer Python refuses to convert (over 4300 digits)
    h = harness
    h.start_all()
    command = _store_command()
    text = json.dumps(_envelope([{**command, "store_name": "PLACEHOLDER"}]))
    body = text.replace('"PLACEHOLDER"', "7" * 5000).encode()

    # When it is published
    h.publish_raw(Q, body)

    # Then it is rejected, not dead-lettered
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))
    assert "an integer of 5000 digits" in rejected["message"]
    _then_a_valid_command_is_processed(h)


def test_an_eta_beyond_the_longest_backoff_is_dead_lettered_not_held(harness: Harness) -> None:
    # Given a message on the delay queue whose eta is a week ahead, and one due now
    h = harness
    h.start_all()
    week = int(time.time() * 1000) + 7 * 24 * 3600 * 1000
    held = _envelope([_store_command()], queue_name=f"{Q}.DQ", options={"eta": week})
    h.publish_raw(f"{Q}.DQ", json.dumps(held).encode())
    due_command = _store_command()
    due = _envelope([due_command], queue_name=f"{Q}.DQ", options={"eta": int(time.time() * 1000)})
    h.publish_raw(f"{Q}.DQ", json.dumps(due).encode())

    # Then the far one is dead-lettered with its reason, never taken into memory
    [(reason, body)] = _dead_letters(h, 1)
    assert reason.startswith("ETA_TOO_FAR")
    assert f"{MAX_BACKOFF_MS // 1000} s" in reason
    assert json.loads(body)["message_id"] == held["message_id"]
    # and the one due, as a retry would be, runs as before
    h.wait_event("store.configured", command_id=uuid.UUID(due_command["command_id"]))
    assert h.queue_depth(f"{Q}.DQ") == 0


def test_a_valid_command_still_parses_strictly_with_uuids_and_times_as_strings(
    harness: Harness,
) -> None:
    # Given the exact bytes an upstream publishes (UUIDs and date-times are strings)
    h = harness
    h.start_all()
    valid = configure_store()

    # When they are published, then the command is carried out
    h.publish_raw(Q, command_bytes(valid))
    h.wait_event("store.configured", command_id=valid.command_id)


def test_a_terminal_escape_in_a_store_name_is_refused(harness: Harness) -> None:
    # Given a store name that would retitle and clear an operator's terminal
    h = harness
    h.start_all()
    command = {**_store_command(), "store_name": "Shop\x1b]0;owned\x07\x1b[2J"}

    # When it is published
    h.publish_raw(Q, json.dumps(_envelope([command])).encode())

    # Then it is rejected, naming the field and the character
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))
    assert rejected["code"] == "VALIDATION_FAILED"
    assert "store_name" in rejected["message"]
    assert "U+001B" in rejected["message"]


def test_an_unknown_actor_role_is_answered_with_a_rejection(harness: Harness) -> None:
    # Given a command whose actor claims a role the portal does not have
    h = harness
    h.start_all()
    command = _store_command()
    command["actor"] = {**command["actor"], "role": "Root"}

    # When it is published, then it is rejected as invalid, naming the field
    h.publish_raw(Q, json.dumps(_envelope([command])).encode())
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))
    assert rejected["code"] == "VALIDATION_FAILED"
    assert "actor.role" in rejected["message"]


def _order_with_link(h: Harness) -> tuple[uuid.UUID, str]:
    store = configure_store()
    h.publish(store)
    h.wait_event("store.configured", command_id=store.command_id)
    order = create_order()
    h.publish(order)
    sent = h.wait_event("link.sent", order_id=order.order_id)
    return order.order_id, token_from_outbox(h.workdir / "outbox", sent["link_id"])


def _publish_to(h: Harness, actor_name: str, command: dict[str, Any]) -> dict[str, Any]:
    route = BY_ACTOR[actor_name]
    envelope = {**_envelope([command]), "queue_name": route.queue_name, "actor_name": actor_name}
    h.publish_raw(route.queue_name, json.dumps(envelope).encode())
    return h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))


def test_rejections_name_the_order_and_store_paylink_knows(harness: Harness) -> None:
    # Given an order of the store, with its link sent
    h = harness
    h.start_all()
    order_id, token = _order_with_link(h)
    base = {"command_id": str(uuid.uuid4()), "issued_at": now().isoformat()}

    # When an invalid capture by the store's admin and an invalid opening of the link
    # (they name no store, and the opening no order) are published
    capture = _publish_to(
        h,
        "capture_payment",
        {**base, "actor": ADMIN, "order_id": str(order_id), "amount": "lots"},
    )
    opened = _publish_to(
        h, "payment_link_opened", {**base, "command_id": str(uuid.uuid4()), "token": token, "x": 1}
    )

    # Then the capture's rejection names the order's store, the opening's the order too
    assert (capture["order_id"], capture["store_id"]) == (str(order_id), STORE)
    assert (opened["order_id"], opened["store_id"]) == (str(order_id), STORE)


def test_a_rejection_does_not_tell_a_stranger_which_store_an_order_is_in(
    harness: Harness,
) -> None:
    # Given an order of the store
    h = harness
    h.start_all()
    order_id, _token = _order_with_link(h)
    stranger = {"user_id": "intruder", "role": "Admin", "store_ids": ["other-store"]}

    # When another store's actor sends an invalid capture for it
    rejected = _publish_to(
        h,
        "capture_payment",
        {
            "command_id": str(uuid.uuid4()),
            "issued_at": now().isoformat(),
            "actor": stranger,
            "order_id": str(order_id),
            "amount": 1.5,
        },
    )

    # Then the rejection names no store
    assert rejected["store_id"] is None


def _publish_to_commands_exchange(
    h: Harness, routing_key: str, body: bytes, *, user_id: str | None = "guest"
) -> None:
    with pika.BlockingConnection(pika.URLParameters(h.broker_url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            COMMANDS_EXCHANGE,
            routing_key,
            body,
            pika.BasicProperties(delivery_mode=2, user_id=user_id),
            mandatory=True,
        )


def _grant(h: Harness, upstream: str, store: str, *roles: str) -> None:
    engine = create_engine(h.database_url)
    try:
        grant(engine, upstream, store, roles)
    finally:
        engine.dispose()


def test_a_command_published_to_the_commands_exchange_by_its_user_is_carried_out(
    harness: Harness,
) -> None:
    # Given workers (they declare the exchange and its bindings), and an upstream
    # granted the store
    h = harness
    h.start_all()
    _grant(h, "guest", STORE, "Admin")
    command = configure_store()

    # When an upstream publishes it with its type as routing key and its broker user
    _publish_to_commands_exchange(h, "ConfigureStore", command_bytes(command))

    # Then it is carried out
    h.wait_event("store.configured", command_id=command.command_id)


def test_a_command_without_its_publishers_user_id_is_refused(harness: Harness) -> None:
    h = harness
    h.start_all()
    command = configure_store()

    _publish_to_commands_exchange(h, "ConfigureStore", command_bytes(command), user_id=None)

    rejected = h.wait_event("order.rejected", command_id=command.command_id)
    assert "NO_PUBLISHER" in rejected["message"]
    assert not h.events_for(command.command_id, "store.configured")


def test_an_internal_command_cannot_be_slipped_in_under_a_public_routing_key(
    harness: Harness,
) -> None:
    # Given an order whose link was sent, and its token known to an attacker
    h = harness
    h.start_all()
    order_id, token = _order_with_link(h)
    forged = {
        "command_id": str(uuid.uuid4()),
        "issued_at": now().isoformat(),
        "order_id": str(order_id),
        "link_id": str(uuid.uuid4()),
        "token": token,
    }
    envelope = {
        **_envelope([forged]),
        "queue_name": Queue.SEND_LINK,
        "actor_name": "send_payment_link",
    }

    # When a SendPaymentLink is published as a ResendPaymentLink (same queue)
    _publish_to_commands_exchange(h, "ResendPaymentLink", json.dumps(envelope).encode())

    # Then it is refused and nothing is sent again
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(forged["command_id"]))
    assert "WRONG_ROUTING_KEY" in rejected["message"]
    assert len(h.events_for(type_="link.sent", order_id=order_id)) == 1


def test_internal_commands_have_no_route_from_the_commands_exchange(harness: Harness) -> None:
    h = harness
    h.start_all()
    _then_a_valid_command_is_processed(h)  # the workers have declared the bindings

    with pytest.raises(pika.exceptions.UnroutableError):
        _publish_to_commands_exchange(h, "SendPaymentLink", b"{}")


@pytest.mark.parametrize(
    ("actor", "code"),
    [
        ({"user_id": "mallory", "role": "Admin", "store_ids": ["store-a"]}, "STORE_ACCESS_DENIED"),
        ({"user_id": "mallory", "role": "Super Admin", "store_ids": [STORE]}, "ROLE_NOT_ALLOWED"),
    ],
    ids=["another_store", "a_higher_role"],
)
def test_an_upstream_cannot_assert_an_actor_beyond_its_grants(
    harness: Harness, actor: dict[str, Any], code: str
) -> None:
    # Given an upstream granted store-it as Admin, and store-a configured by its own
    h = harness
    h.start_all()
    _grant(h, "guest", STORE, "Admin")
    _grant(h, "guest-of-store-a", "store-a", "Admin")

    # When it publishes a ConfigureStore naming another store, or claiming a higher role
    command = configure_store(store_id=actor["store_ids"][0], actor=actor, store_name="Pwned")
    _publish_to_commands_exchange(h, "ConfigureStore", command_bytes(command))

    # Then it is refused, and the store is not renamed
    rejected = h.wait_event("order.rejected", command_id=command.command_id)
    assert rejected["code"] == code
    assert not h.events_for(type_="store.configured")


def test_an_unknown_actor_from_the_commands_exchange_is_answered_as_its_routing_key(
    harness: Harness,
) -> None:
    # Given a command whose envelope names an actor paylink does not have
    h = harness
    h.start_all()
    command = _store_command()
    envelope = {**_envelope([command]), "actor_name": "drop_all_stores"}

    # When it arrives through the commands exchange as a ConfigureStore
    _publish_to_commands_exchange(h, "ConfigureStore", json.dumps(envelope).encode())

    # Then it is rejected as that command, naming the unknown actor
    rejected = h.wait_event("order.rejected", command_id=uuid.UUID(command["command_id"]))
    assert rejected["code"] == "VALIDATION_FAILED"
    assert rejected["command_type"] == "ConfigureStore"
    assert "drop_all_stores" in rejected["message"]
    assert h.queue_depth(f"{Q}.XQ") == 0
