"""The SQL unit of work: one database transaction per ``with`` block.

Everything a command changes (order rows, ledger entries, links, notification state,
the processed-command record and the outbox rows) is written in one transaction.
Database failures surface as ``TransientError`` so the runtime retries them; a
unique-key race (two deliveries of one command id, two creates of one order id)
is one of them: the retry then sees the winner's result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Self
from uuid import UUID

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import TransientError
from workers.storage.orders import SqlOrderRepository
from workers.storage.records import (
    Now,
    SqlNotifications,
    SqlOutbox,
    SqlProcessedCommands,
    SqlStoreRepository,
)
from workers.storage.reminders import SqlReminderDeadlines

__all__ = ["SqlOutbox", "SqlUnitOfWork", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlUnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session], now: Now = utcnow) -> None:
        self.session_factory = session_factory
        self.now = now

    def __enter__(self) -> Self:
        self.session = self.session_factory()
        self._scopes = 0
        self._repositories()
        return self

    def _repositories(self) -> None:
        self.orders = SqlOrderRepository(self.session)
        self.stores = SqlStoreRepository(self.session, self.now)
        self.processed = SqlProcessedCommands(self.session, self.now)
        self.outbox = SqlOutbox(self.session, self.now)
        self.notifications = SqlNotifications(self.session, self.now)
        self.reminders = SqlReminderDeadlines(self.session)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
        if isinstance(exc, DBAPIError):
            raise TransientError(f"database error: {type(exc.orig).__name__}") from exc

    def prefetch(
        self,
        *,
        command_ids: Sequence[UUID] = (),
        order_ids: Sequence[UUID] = (),
        lock: bool = False,
        store_ids: Sequence[str] = (),
        link_ids: Sequence[UUID] = (),
    ) -> None:
        """Read in one statement per table what several commands will ask for."""
        if command_ids:
            self.processed.prefetch(command_ids)
        if order_ids:
            self.orders.prefetch(order_ids, lock=lock)
        if store_ids:
            self.stores.prefetch(store_ids)
        if link_ids:
            self.notifications.prefetch(link_ids)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """See ``UnitOfWork.scope``. Each repository restores what it staged; scopes
        nest (an inner one that raises discards only its own writes)."""
        self._scopes += 1
        try:
            with (
                self.orders.scope(),
                self.stores.scope(),
                self.processed.scope(),
                self.outbox.scope(),
                self.notifications.scope(),
                self.reminders.scope(),
            ):
                yield
        finally:
            self._scopes -= 1

    def commit(self) -> None:
        if self._scopes:
            raise RuntimeError("commit inside UnitOfWork.scope(): commit the group after it")
        try:
            # Parents first: orders, then the rows that name them.
            self.orders.flush(self.now())
            self.stores.flush()
            self.notifications.flush()
            self.reminders.flush()
            self.processed.flush()
            self.outbox.flush()
            self.session.commit()
        except (IntegrityError, OperationalError) as exc:
            self.session.rollback()
            raise TransientError(
                f"database refused the commit ({type(exc.orig).__name__}); retrying"
            ) from exc

    def rollback(self) -> None:
        self.session.rollback()
        self._repositories()  # nothing buffered or cached survives a rollback
