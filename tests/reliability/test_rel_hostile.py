"""10 000 malformed and hostile messages mixed into 300 orders' full lifecycles.

Spread over every command queue: wrong types, missing fields, megabyte strings,
unknown actors, invalid JSON, binary garbage, roles that may not act, other stores'
orders, negative and fractional amounts, extra fields, forged tokens and links, NUL
characters, and spoiled Dramatiq envelopes (extra arguments, kwargs, options such as
``eta``/``on_success``, another queue's name). Each is owed its outcome (see
``tests.reliability.hostile``); the valid traffic must not notice.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter

import pika
import pytest

from messages.routing import ALL_QUEUES, DEAD_LETTER_REASON_HEADER
from tests.reliability.checks import (
    Report,
    check_ledger,
    check_outcomes,
    check_recorded_events_published,
    notifications,
    processed,
    queue_depths,
    wait_settled,
)
from tests.reliability.conftest import Rig
from tests.reliability.hostile import Generator, Hostile
from tests.reliability.lifecycle import Lifecycle
from workers.devtools.harness import Publisher
from workers.storage.engine import make_engine

pytestmark = pytest.mark.reliability

VALID_ORDERS = 300
HOSTILE = int(os.environ.get("PAYLINK_REL_HOSTILE", "10000"))


def _dead_letters(url: str) -> dict[str, tuple[str, str | None]]:
    """Every dead letter, drained: key (message id, or body hex) -> (queue, reason)."""
    found: dict[str, tuple[str, str | None]] = {}
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        for queue in ALL_QUEUES:
            while True:
                method, props, body = ch.basic_get(f"{queue}.XQ", auto_ack=True)
                if method is None:
                    break
                try:
                    data = json.loads(body)
                    key = data["message_id"] if isinstance(data, dict) else body.hex()
                except (ValueError, KeyError):
                    key = body.hex()
                found[key] = (queue, (props.headers or {}).get(DEAD_LETTER_REASON_HEADER))
    return found


def test_hostile_messages_mixed_into_valid_traffic(rig: Rig, record_property) -> None:  # type: ignore[no-untyped-def]
    report = Report("hostile_messages", record_property)
    rig.start_stack(processes=2, threads=8)
    engine = make_engine(rig.h.database_url)
    life = Lifecycle(rig.pub, rig.events, rig.outbox)
    life.configure_store()
    life.create(VALID_ORDERS)
    creates = list(life.commands)
    while not all(rig.events.for_command(cid) for cid in creates):
        life.pump(0.1)

    # the flood: one channel, no confirms, the lifecycle moving along in between
    flood = Publisher(rig.h.broker_url, confirm=False)
    hostile: list[Hostile] = []
    for i, message in enumerate(Generator([uuid.UUID(o) for o in life.runs]).messages(HOSTILE)):
        flood.publish_bytes(message.queue, message.body)
        hostile.append(message)
        if i % 250 == 0:
            life.pump()
    flood.close()
    life.run(timeout=240)

    owed_rejection = {m.command_id: m for m in hostile if m.command_id}
    owed_dead = {m.key: m for m in hostile if not m.command_id}
    rig.events.wait_for(
        lambda: all(rig.events.for_command(cid) for cid in owed_rejection),
        180,
        "a rejection for every hostile command id",
    )
    wait_settled(engine, rig.pub, rig.events, 120)

    # valid traffic: untouched
    states = check_ledger(engine)
    life.check_final_states(states)
    records = processed(engine)
    valid = check_outcomes(records, rig.events, life.commands)
    assert valid == {"accepted": len(life.commands)}, valid
    check_recorded_events_published(records, rig.events)

    # hostile with a command id: exactly one rejection each, of the expected family
    check_outcomes(records, rig.events, owed_rejection)
    wrong = []
    codes: Counter[str] = Counter()
    for cid, m in owed_rejection.items():
        events = rig.events.for_command(cid)
        codes[events[0].get("code", events[0]["type"])] += 1
        if [e["type"] for e in events] != ["order.rejected"] or events[0]["code"] not in m.expect:
            wrong.append((m.kind, [(e["type"], e.get("code"), e.get("message")) for e in events]))
    assert not wrong, f"{len(wrong)} hostile commands without their rejection: {wrong[:10]}"

    # hostile without one: each dead-lettered with its reason, and nothing else was
    dead = _dead_letters(rig.h.broker_url)
    missing = [m.kind for k, m in owed_dead.items() if k not in dead]
    assert not missing, f"{len(missing)} not dead-lettered: {Counter(missing)}"
    unreasoned = [
        (m.kind, dead[k])
        for k, m in owed_dead.items()
        if not any((dead[k][1] or "").startswith(p) for p in m.expect)
    ]
    assert not unreasoned, f"{len(unreasoned)} dead letters without their reason: {unreasoned[:10]}"
    unexpected = {k: v for k, v in dead.items() if k not in owed_dead}
    assert not unexpected, f"dead-lettered but owed something else: {list(unexpected.items())[:10]}"
    assert not any(queue_depths(rig.pub).values())

    # the workers never died, no thread of theirs either
    assert rig.sup.restarts == []
    logs = rig.h.logs()
    assert "Exception in thread" not in logs
    assert "Retries exceeded" not in logs

    sends = notifications(engine)
    report["orders"] = VALID_ORDERS
    report["valid_commands"] = len(life.commands)
    report["hostile"] = len(hostile)
    report["hostile_bytes"] = sum(len(m.body) for m in hostile)
    report["rejections"] = len(owed_rejection)
    report["rejection_codes"] = dict(codes)
    report["dead_letters"] = len(dead)
    report["kills"] = 0
    report["restarts"] = len(rig.sup.restarts)
    report["uncertain_sends"] = sends.uncertain
    report["duplicate_notifications"] = sends.duplicates
    report.emit()
    assert (sends.uncertain, sends.duplicates) == (0, 0)
