"""The expiry scheduler: turns due deadlines in the database into expiry commands.

It releases the reminders before expiry (``link_reminders.due_at``) the same way:
locked, re-checked by the domain's rule, released as commands in that transaction.

Deadlines live in ``orders.link_due_at`` / ``orders.reservation_due_at`` (indexed,
set only while an expiry can still apply), never in worker memory or a RabbitMQ
delay queue: a 48 h Dramatiq ``delay=`` would be held unacked and RabbitMQ's
``consumer_timeout`` (30 min) would close the channel again and again.

Each tick takes due rows with ``FOR UPDATE SKIP LOCKED`` (several schedulers may run)
and stamps the release time, in one transaction. Reservation expiries are released as
``ExpireAuthorization`` commands into the outbox; the relay publishes them and a worker
applies them. Link expiries (many at once when a day's links lapse) are applied right
here by default, in the same transaction that locked the rows: each link's status and
deadline are re-checked by ``domain.expiry.expire``, the function ``Order.expire_link``
itself calls (reading only the columns it needs, not whole orders), and the rows and their
``link.expired`` events (caused by the id the ``ExpirePaymentLink`` command would
carry) are written with one statement each. The row lock and the cleared deadline make
it idempotent: a second tick no longer sees the row as due. A link completed a second
before its deadline is no longer due (or is re-checked under the row lock) and stays
completed. With ``PAYLINK_SCHEDULER_APPLY_LINK_EXPIRY=false`` link
expiries are released as commands, like reservations. A row still due
``REPUBLISH_AFTER`` after a release (say the worker rejected it for clock skew) is
released again with a fresh command id.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Column, Row, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import DomainError
from domain.expiry import DueLink, expire_due_links
from domain.links import Delivery
from domain.reminders import RemindableLink, check_reminder
from domain.status import LinkStatus
from messages import commands as c
from workers.observability.health import start_health_server
from workers.observability.logs import configure_logging
from workers.processes import metrics
from workers.processes.retention import prune
from workers.settings import Settings
from workers.storage import tables as t
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.orders import write_link_expiries
from workers.storage.reminders import due_reminders, mark_released, reminder_command
from workers.storage.uow import SqlOutbox

log = structlog.get_logger("paylink.scheduler")

#: A deadline released but still due this long after is released again.
REPUBLISH_AFTER = timedelta(minutes=5)


def _due(
    session: Session, due_col: Column[Any], released_col: Column[Any], now: datetime, limit: int
) -> list[Row[Any]]:
    """Due rows, locked: the columns link expiry needs (reservations need the id only)."""
    query = (
        select(
            t.orders.c.order_id,
            t.orders.c.current_link_id,
            t.orders.c.store_id,
            t.orders.c.link_status,
            t.orders.c.link_expires_at,
        )
        .where(due_col <= now)
        .where(or_(released_col.is_(None), released_col < now - REPUBLISH_AFTER))
        .order_by(due_col)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.execute(query))


def link_expiry_id(link_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """A tick's expiry of a link: the same id whether applied here or sent as a command."""
    return uuid.uuid5(link_id, f"expire-link:{now.isoformat()}")


def expire_link_command(
    order_id: uuid.UUID, link_id: uuid.UUID, now: datetime
) -> c.ExpirePaymentLink:
    return c.ExpirePaymentLink(
        command_id=link_expiry_id(link_id, now),
        issued_at=now,
        order_id=order_id,
        link_id=link_id,
    )


def _apply_link_expiries(
    session: Session, rows: list[Row[Any]], now: datetime, outbox: SqlOutbox
) -> list[uuid.UUID]:
    """Expire the due links of these (locked) orders in this transaction.

    The rule is ``domain.expiry.expire``, the one ``Order.expire_link`` calls; only the few
    columns it needs are read, and the rows and events are written in one statement
    each. A link the rule refuses (not due after all, say) is left as it is and logged;
    its row is released again after ``REPUBLISH_AFTER``. Returns the refused orders.
    """
    due = [
        DueLink(
            r.order_id, r.store_id, LinkStatus(r.link_status), r.current_link_id, r.link_expires_at
        )
        for r in rows
    ]
    applied, refused = expire_due_links(due, now, lambda d: link_expiry_id(d.link_id, now))
    for d, error in refused:
        log.warning("link expiry refused", order_id=str(d.order_id), code=error.code)
    write_link_expiries(session, applied, now)
    for expiry in applied:
        outbox.add_event(expiry.event)
    return [d.order_id for d, _ in refused]


def release_due(
    session_factory: sessionmaker[Session],
    now: datetime,
    limit: int,
    *,
    apply_links: bool = True,
) -> tuple[int, int]:
    """One tick: release due link and reservation expiries. Returns (links, reservations).

    With ``apply_links`` (the default, as ``PAYLINK_SCHEDULER_APPLY_LINK_EXPIRY``'s), due
    link expiries are applied in this transaction instead of being released as commands.
    """
    with session_factory() as session, session.begin():
        outbox = SqlOutbox(session, lambda: now)
        links = _due(
            session, t.orders.c.link_due_at, t.orders.c.link_expiry_released_at, now, limit
        )
        released = [r.order_id for r in links]
        if links and apply_links:
            released = _apply_link_expiries(session, links, now, outbox)
        else:
            for row in links:
                outbox.add_command(expire_link_command(row.order_id, row.current_link_id, now))
        reservations = _due(
            session,
            t.orders.c.reservation_due_at,
            t.orders.c.reservation_expiry_released_at,
            now,
            limit,
        )
        for row in reservations:
            outbox.add_command(
                c.ExpireAuthorization(
                    command_id=uuid.uuid5(row.order_id, f"expire-authorization:{now.isoformat()}"),
                    issued_at=now,
                    order_id=row.order_id,
                )
            )
        outbox.flush()
        if released:
            session.execute(
                update(t.orders)
                .where(t.orders.c.order_id.in_(released))
                .values(link_expiry_released_at=now)
            )
        if reservations:
            session.execute(
                update(t.orders)
                .where(t.orders.c.order_id.in_([r.order_id for r in reservations]))
                .values(reservation_expiry_released_at=now)
            )
    return len(links), len(reservations)


def release_reminders(session_factory: sessionmaker[Session], now: datetime, limit: int) -> int:
    """One tick of reminders (``domain.reminders``): each due reminder the domain's rule
    still allows is released into the outbox as its SendPaymentLink; one it refuses (the
    link was opened, paid, cancelled, replaced) is dropped. Either way the row is no
    longer due, in the transaction that locked it. Returns the reminders released.
    """
    with session_factory() as session, session.begin():
        outbox = SqlOutbox(session, lambda: now)
        rows = due_reminders(session, now, limit)
        released = 0
        for row in rows:
            state = RemindableLink(
                LinkStatus(row.link_status),
                row.current_link_id,
                Delivery(row.delivery),
                row.expires_at,
            )
            try:
                check_reminder(state, row.link_id, now)
            except DomainError as error:
                log.info("reminder dropped", order_id=str(row.order_id), code=error.code)
                continue
            outbox.add_command(reminder_command(row))
            released += 1
        outbox.flush()
        mark_released(session, [r.link_id for r in rows], now)
    return released


#: How often a scheduler prunes expired rows (``workers.processes.retention``): retention is
#: counted in days, so an hour late is on time.
PRUNE_EVERY_SECONDS = 3600.0


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.session_factory = make_session_factory(self.engine)
        self.stopping = threading.Event()
        self.healthy = False
        self.released = 0
        self._next_prune = 0.0  # monotonic; the first run prunes at once

    def maybe_prune(self, now: datetime | None = None) -> dict[str, int] | None:
        """Prune expired rows if the last run was ``PRUNE_EVERY_SECONDS`` ago."""
        if time.monotonic() < self._next_prune:
            return None
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        pruned = prune(self.engine, self.settings, now or datetime.now(UTC))
        metrics.pruned(pruned)
        if any(pruned.values()):
            log.info("expired rows pruned", **pruned)
        return pruned

    def tick(self) -> int:
        now = datetime.now(UTC)
        links, reservations = release_due(
            self.session_factory,
            now,
            self.settings.scheduler_batch_size,
            apply_links=self.settings.scheduler_apply_link_expiry,
        )
        reminders = release_reminders(self.session_factory, now, self.settings.scheduler_batch_size)
        if links or reservations or reminders:
            log.info(
                "deadlines released", links=links, reservations=reservations, reminders=reminders
            )
        metrics.ticked(links, reservations, reminders)
        self.released += links + reservations + reminders
        return max(links, reservations, reminders)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                full = self.tick() >= self.settings.scheduler_batch_size
                self.healthy = True
                self.maybe_prune()
            except Exception as exc:  # database down: keep trying, report unready
                self.healthy, full = False, False
                log.warning("scheduler tick failed", error=f"{type(exc).__name__}: {exc}")
            if not full:
                self.stopping.wait(self.settings.scheduler_poll_seconds)


def run_scheduler(settings: Settings, *, health_port: int | None = 9301) -> None:
    configure_logging(settings)
    scheduler = Scheduler(settings)
    if health_port:
        start_health_server(health_port, lambda: scheduler.healthy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: scheduler.stopping.set())
    scheduler.run()
