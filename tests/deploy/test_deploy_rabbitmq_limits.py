"""deploy/rabbitmq: the broker's bound on message size, and how it sits with the workers'."""

from __future__ import annotations

from deploy_contract import DEPLOY

from workers.settings import DEFAULT_MAX_MESSAGE_BYTES

#: RabbitMQ 4's own default; a larger limit would be no limit at all.
RABBITMQ_DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def _conf() -> dict[str, str]:
    text = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8")
    return dict(
        line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_rabbitmq_refuses_bodies_over_a_max_message_size_it_is_given() -> None:
    size = int(_conf()["max_message_size"])

    assert size < RABBITMQ_DEFAULT_MAX_MESSAGE_SIZE


def test_the_broker_limit_is_above_the_workers_so_they_dead_letter_with_a_reason() -> None:
    # Between the two limits a body reaches a worker, which dead-letters it as
    # MESSAGE_TOO_LARGE; the dead letter itself must fit under the broker's limit.
    size = int(_conf()["max_message_size"])

    assert size >= 2 * DEFAULT_MAX_MESSAGE_BYTES
