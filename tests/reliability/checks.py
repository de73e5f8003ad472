"""What every fault-injection scenario asserts once its load is over.

- the system settled: no unsent outbox rows, command queues and retry queues empty;
- ledger: ``0 <= captured <= order_amount``, ``0 <= refunded <= captured``, captures never
  above the authorization, nothing still reserved below zero, the stored status equal to
  the one derived from the ledger, and no ledger row applied twice for one command;
- outcomes: every published command has exactly one processed record, and the events
  on the stream for it are exactly the events that record holds (nothing lost, nothing
  extra; re-publications carry the same event ids and are counted, not doubled);
- every recorded outcome (rejections included) reached the event stream;
- dead letters: per ``.XQ`` count, so a scenario can require zero for valid traffic;
- customer notifications: the attempts a kill left uncertain
  (``notifications.uncertain_attempts``) and, of those, the ones sent again although
  the provider could not tell (``blind_resends``): the possible duplicates.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from domain.ledger import EntryKind, LedgerEntry, ReleaseReason, balance, payment_status
from messages.routing import ALL_QUEUES
from workers.devtools.harness import EventCollector, Publisher, poll_until
from workers.storage import tables as t


@dataclass
class Report:
    """The counts a scenario reports: printed, and attached to the test's JUnit record."""

    scenario: str
    record_property: Callable[[str, object], None]
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, object] = field(default_factory=dict)

    def __setitem__(self, key: str, value: object) -> None:
        self.counts[key] = value

    def emit(self) -> None:
        self.counts["duration_s"] = round(time.monotonic() - self.started, 1)
        line = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        print(f"\n[reliability] {self.scenario}: {line}")
        for key, value in self.counts.items():
            self.record_property(key, value)


# ---- settling ------------------------------------------------------------------------


def outbox_backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.sent_at.is_(None))
            ).scalar_one()
        )


def queue_depths(pub: Publisher, suffixes: Iterable[str] = ("", ".DQ")) -> dict[str, int]:
    return {q + s: pub.queue_depth(q + s)[0] for q in ALL_QUEUES for s in suffixes}


def wait_settled(engine: Engine, pub: Publisher, events: EventCollector, timeout: float) -> None:
    """Outbox sent, command and retry queues empty, and the event stream quiet."""

    def quiet() -> bool:
        before = events.deliveries
        if outbox_backlog(engine) or any(queue_depths(pub).values()):
            return False
        time.sleep(0.5)
        return events.deliveries == before and not outbox_backlog(engine)

    if not poll_until(quiet, timeout, interval=0.2):
        raise AssertionError(
            f"not settled after {timeout}s: outbox backlog {outbox_backlog(engine)}, "
            f"queues {queue_depths(pub)}"
        )


def dead_letters(pub: Publisher) -> dict[str, int]:
    return {q: n for q, n in queue_depths(pub, (".XQ",)).items() if n}


# ---- ledger --------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderState:
    order_id: uuid.UUID
    status: str
    link_status: str
    order_amount: int
    authorized: int
    captured: int
    refunded: int
    released: int
    captures: int
    refunds: int


def check_ledger(engine: Engine) -> dict[uuid.UUID, OrderState]:
    """Every invariant of DESIGN section 1 on every order; returns each order's state."""
    with engine.connect() as conn:
        orders = conn.execute(
            select(
                t.orders.c.order_id,
                t.orders.c.order_amount,
                t.orders.c.status,
                t.orders.c.link_status,
            )
        ).all()
        rows = conn.execute(
            select(
                t.ledger_entries.c.entry_id,
                t.ledger_entries.c.order_id,
                t.ledger_entries.c.kind,
                t.ledger_entries.c.amount,
                t.ledger_entries.c.at,
                t.ledger_entries.c.command_id,
                t.ledger_entries.c.reason,
            )
        ).all()
    entries: dict[uuid.UUID, list[LedgerEntry]] = defaultdict(list)
    for r in rows:
        entries[r.order_id].append(
            LedgerEntry(
                r.entry_id,
                EntryKind(r.kind),
                r.amount,
                r.at,
                r.command_id,
                ReleaseReason(r.reason) if r.reason else None,
            )
        )
    applied = Counter((r.command_id, r.kind) for r in rows)
    twice = {key: n for key, n in applied.items() if n > 1}
    assert not twice, f"ledger rows applied more than once for one command: {twice}"

    states: dict[uuid.UUID, OrderState] = {}
    problems: list[str] = []
    for o in orders:
        mine = entries.get(o.order_id, [])
        b = balance(mine)
        kinds = Counter(e.kind for e in mine)
        captured_only = sum(e.amount for e in mine if e.kind is EntryKind.CAPTURE)
        derived = payment_status(b, o.order_amount).value if o.link_status == "COMPLETED" else None
        checks = {
            "0 <= captured <= order_amount": 0 <= b.captured <= o.order_amount,
            "0 <= refunded <= captured": 0 <= b.refunded <= b.captured,
            "captures <= authorized": captured_only <= b.authorized,
            "return fees within refunds": 0 <= b.fees <= b.refunded,
            "authorization equals the order amount": o.link_status != "COMPLETED"
            or b.authorized - b.reduced == o.order_amount,
            "remaining >= 0": o.link_status != "COMPLETED" or b.remaining(o.order_amount) >= 0,
            "no money before checkout": o.link_status == "COMPLETED" or not mine,
            "status is derived from the ledger": o.status == (derived or o.link_status),
        }
        problems += [f"{o.order_id}: {name} ({b}, {o})" for name, ok in checks.items() if not ok]
        states[o.order_id] = OrderState(
            o.order_id,
            o.status,
            o.link_status,
            o.order_amount,
            b.authorized,
            b.captured,
            b.refunded,
            b.released,
            kinds[EntryKind.CAPTURE],
            kinds[EntryKind.REFUND],
        )
    assert not problems, f"{len(problems)} ledger invariant violations: {problems[:10]}"
    return states


# ---- outcomes ------------------------------------------------------------------------


def processed(engine: Engine) -> dict[str, Any]:
    """Every processed-command record by command id."""
    with engine.connect() as conn:
        return {
            str(r.command_id): r
            for r in conn.execute(
                select(
                    t.processed_commands.c.command_id,
                    t.processed_commands.c.command_type,
                    t.processed_commands.c.outcome,
                    t.processed_commands.c.events,
                )
            )
        }


def check_recorded_events_published(
    records: dict[str, Any], events: EventCollector, timeout: float = 30
) -> None:
    """Every event a committed outcome recorded (rejections included) is on the stream."""

    def missing() -> list[str]:
        seen = events.by_id
        return [
            f"{r.command_type} {cid}: {e['type']}"
            for cid, r in records.items()
            for e in r.events
            if e["event_id"] not in seen
        ]

    left = missing()
    if left:
        poll_until(lambda: not missing(), timeout, interval=0.2)
        left = missing()
    assert not left, f"{len(left)} committed events never published: {left[:10]}"


def check_outcomes(
    records: dict[str, Any], events: EventCollector, command_ids: Iterable[str]
) -> Counter[str]:
    """Exactly one outcome per command; returns a Counter of outcome / rejection codes."""
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    for cid in command_ids:
        record = records.get(cid)
        if record is None:
            problems.append(f"{cid}: never processed")
            continue
        recorded = {e["event_id"] for e in record.events}
        streamed = {e["event_id"] for e in events.for_command(cid)}
        if recorded != streamed:
            problems.append(f"{cid}: recorded {recorded} but streamed {streamed}")
        if record.outcome == "rejected":
            outcomes[f"rejected:{record.events[0]['code']}"] += 1
        else:
            outcomes[record.outcome] += 1
    assert not problems, f"{len(problems)} commands without exactly one outcome: {problems[:10]}"
    return outcomes


# ---- notifications -------------------------------------------------------------------


@dataclass(frozen=True)
class Notifications:
    links: int
    #: Attempts that found an earlier one's outcome unknown (a kill's crash window).
    uncertain: int
    #: Of those, sent again without the provider able to tell: possible duplicates.
    duplicates: int
    #: The most uncertain attempts of any one link.
    worst: int


def notifications(engine: Engine) -> Notifications:
    n = t.notifications.c
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(n.uncertain_attempts), 0),
                func.coalesce(func.sum(n.blind_resends), 0),
                func.coalesce(func.max(n.uncertain_attempts), 0),
            )
        ).one()
    links, uncertain, blind, worst = (int(value) for value in row)
    return Notifications(links, uncertain, blind, worst)
