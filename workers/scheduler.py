"""The expiry scheduler: turns due deadlines in the database into expiry commands.

Deadlines live in ``orders.link_due_at`` / ``orders.reservation_due_at`` (indexed,
set only while an expiry can still apply), never in worker memory or a RabbitMQ
delay queue: a 48 h Dramatiq ``delay=`` would be held unacked and RabbitMQ's
``consumer_timeout`` (30 min) would close the channel again and again.

Each tick takes due rows with ``FOR UPDATE SKIP LOCKED`` (several schedulers may run)
and stamps the release time, in one transaction. Reservation expiries are released as
``ExpireAuthorization`` commands into the outbox; the relay publishes them and a worker
applies them. Link expiries (many at once when a day's links lapse) are applied right
here by default, in the same transaction that locked the rows: each due link becomes
the same ``ExpirePaymentLink`` command a worker would get (same deterministic id) and
runs through ``domain.dispatch`` (idempotency, the handler's re-check of status and
deadline, rejections), a batch of units of work sharing one transaction and one
executemany per table; the ``link.expired`` events go to the outbox with it. A link
completed a second before its deadline is no longer due (or is re-checked under the
row lock) and stays completed. With ``PAYLINK_SCHEDULER_APPLY_LINK_EXPIRY=false`` link
expiries are released as commands, like reservations. A row still due
``REPUBLISH_AFTER`` after a release (say the worker rejected it for clock skew) is
released again with a fresh command id.
"""

from __future__ import annotations

import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from domain.dispatch import dispatch
from domain.handlers import Context
from messages import commands as c
from workers.settings import Settings
from workers.storage import tables as t
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.uow import SqlBatch, SqlOutbox

log = structlog.get_logger("paylink.scheduler")

#: A deadline released but still due this long after is released again.
REPUBLISH_AFTER = timedelta(minutes=5)


def _due(
    session: Session, due_col: object, released_col: object, now: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    query = (
        select(t.orders.c.order_id, t.orders.c.current_link_id)
        .where(due_col <= now)  # type: ignore[operator]
        .where(or_(released_col.is_(None), released_col < now - REPUBLISH_AFTER))  # type: ignore[attr-defined]
        .order_by(due_col)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(r.order_id, r.current_link_id) for r in session.execute(query)]


class FixedClock:
    """The tick's time: what selected the rows is what the handler re-checks against."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def expire_link_command(
    order_id: uuid.UUID, link_id: uuid.UUID, now: datetime
) -> c.ExpirePaymentLink:
    return c.ExpirePaymentLink(
        command_id=uuid.uuid5(link_id, f"expire-link:{now.isoformat()}"),
        issued_at=now,
        order_id=order_id,
        link_id=link_id,
    )


def _apply_link_expiries(
    session: Session, links: list[tuple[uuid.UUID, uuid.UUID | None]], now: datetime, ctx: Context
) -> None:
    """Run each due link's ExpirePaymentLink through dispatch, in this transaction."""
    commands = []
    for order_id, link_id in links:
        assert link_id is not None
        commands.append(expire_link_command(order_id, link_id, now))
    batch = SqlBatch(session, lambda: now)
    batch.preload([cmd.order_id for cmd in commands], [cmd.command_id for cmd in commands])
    for cmd in commands:
        dispatch(cmd, batch.unit, ctx)  # type: ignore[arg-type]
    batch.flush()


def release_due(
    session_factory: sessionmaker[Session],
    now: datetime,
    limit: int,
    *,
    apply_links: Context | None = None,
) -> tuple[int, int]:
    """One tick: release due link and reservation expiries. Returns (links, reservations).

    With ``apply_links`` (the context to run handlers with), due link expiries are
    applied in this transaction instead of being released as commands.
    """
    with session_factory() as session, session.begin():
        outbox = SqlOutbox(session, lambda: now)
        links = _due(
            session, t.orders.c.link_due_at, t.orders.c.link_expiry_released_at, now, limit
        )
        if links and apply_links is not None:
            _apply_link_expiries(session, links, now, apply_links)
        else:
            for order_id, link_id in links:
                assert link_id is not None
                outbox.add_command(expire_link_command(order_id, link_id, now))
        reservations = _due(
            session,
            t.orders.c.reservation_due_at,
            t.orders.c.reservation_expiry_released_at,
            now,
            limit,
        )
        for order_id, _ in reservations:
            outbox.add_command(
                c.ExpireAuthorization(
                    command_id=uuid.uuid5(order_id, f"expire-authorization:{now.isoformat()}"),
                    issued_at=now,
                    order_id=order_id,
                )
            )
        outbox.flush()
        if links:
            session.execute(
                update(t.orders)
                .where(t.orders.c.order_id.in_([o for o, _ in links]))
                .values(link_expiry_released_at=now)
            )
        if reservations:
            session.execute(
                update(t.orders)
                .where(t.orders.c.order_id.in_([o for o, _ in reservations]))
                .values(reservation_expiry_released_at=now)
            )
    return len(links), len(reservations)


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session_factory = make_session_factory(make_engine(settings.database_url))
        self.stopping = threading.Event()
        self.healthy = False
        self.released = 0

    def context(self, now: datetime) -> Context | None:
        if not self.settings.scheduler_apply_link_expiry:
            return None
        from workers.composition import SecretTokens

        s = self.settings
        return Context(
            clock=FixedClock(now),
            tokens=SecretTokens(),
            link_ttl=s.link_ttl,
            reservation_ttl=s.reservation_ttl,
            checkout_base_url=s.checkout_base_url,
        )

    def tick(self) -> int:
        now = datetime.now(UTC)
        links, reservations = release_due(
            self.session_factory,
            now,
            self.settings.scheduler_batch_size,
            apply_links=self.context(now),
        )
        if links or reservations:
            log.info("expiries released", links=links, reservations=reservations)
        self.released += links + reservations
        return max(links, reservations)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                full = self.tick() >= self.settings.scheduler_batch_size
                self.healthy = True
            except Exception as exc:  # database down: keep trying, report unready
                self.healthy, full = False, False
                log.warning("scheduler tick failed", error=f"{type(exc).__name__}: {exc}")
            if not full:
                self.stopping.wait(self.settings.scheduler_poll_seconds)


def run_scheduler(settings: Settings, *, health_port: int | None = 9301) -> None:
    from workers.observability import configure_logging, start_health_server

    configure_logging(settings)
    scheduler = Scheduler(settings)
    if health_port:
        start_health_server(health_port, lambda: scheduler.healthy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: scheduler.stopping.set())
    scheduler.run()


if __name__ == "__main__":
    from workers.settings import get_settings

    run_scheduler(get_settings(), health_port=None)
