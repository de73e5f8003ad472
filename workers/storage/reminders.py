"""Reminder deadlines (``domain.reminders``): kept at commit, released by the scheduler.

One row per link; a second deadline for the same link (a retried create that is
replayed, say) is ignored, so a link is reminded of at most once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, insert, select, update
from sqlalchemy.orm import Session

from domain.reminders import ReminderDeadline
from messages.commands import SendPaymentLink
from workers.storage import tables as t


class SqlReminderDeadlines:
    """Deadlines staged by the handlers, inserted at commit in one statement."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending: dict[UUID, ReminderDeadline] = {}

    def schedule(self, deadline: ReminderDeadline) -> None:
        self.pending.setdefault(deadline.link_id, deadline)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """``UnitOfWork.scope``: a command that fails in a group leaves no deadline."""
        pending = dict(self.pending)
        try:
            yield
        except BaseException:
            self.pending = pending
            raise

    def flush(self) -> None:
        rows, self.pending = list(self.pending.values()), {}
        if not rows:
            return
        self.session.execute(
            insert(t.link_reminders),
            [
                {
                    "link_id": d.link_id,
                    "order_id": d.order_id,
                    "due_at": d.due_at,
                    "command": d.command.model_dump_json(),
                }
                for d in rows
            ],
        )


def due_reminders(session: Session, now: datetime, limit: int) -> list[Row[Any]]:
    """Due reminders, locked (``SKIP LOCKED``: several schedulers may run), with what the
    reminder rule reads of their order and link."""
    r, o, lk = t.link_reminders, t.orders, t.links
    query = (
        select(
            r.c.link_id,
            r.c.order_id,
            r.c.command,
            o.c.link_status,
            o.c.current_link_id,
            lk.c.delivery,
            lk.c.expires_at,
        )
        .join(o, o.c.order_id == r.c.order_id)
        .join(lk, lk.c.link_id == r.c.link_id)
        .where(r.c.due_at <= now)
        .order_by(r.c.due_at)
        .limit(limit)
        .with_for_update(of=r, skip_locked=True)
    )
    return list(session.execute(query))


def reminder_command(row: Row[Any]) -> SendPaymentLink:
    return SendPaymentLink.model_validate_json(row.command)


def mark_released(session: Session, link_ids: list[UUID], now: datetime) -> None:
    """Released (or dropped): no longer due, and the token is no longer kept here."""
    if link_ids:
        session.execute(
            update(t.link_reminders)
            .where(t.link_reminders.c.link_id.in_(link_ids))
            .values(due_at=None, command=None, released_at=now)
        )
