"""The SQL unit of work: one database transaction per ``with`` block.

Everything a command changes (order rows, ledger entries, links, notification state,
the processed-command record and the outbox rows) is written in one transaction.
Database failures surface as ``TransientError`` so the runtime retries them; a
unique-key race (two deliveries of one command id, two creates of one order id)
is one of them: the retry then sees the winner's result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import TransientError
from domain.order import Order
from domain.ports import NotificationRecord, NotificationState, ProcessedCommand
from domain.store import Store
from messages.common import CommandBase, EventBase
from messages.events import EVENT_TYPES
from messages.routing import command_bytes, route_for
from workers.storage import tables as t
from workers.storage.bulk import BULK_MIN_ROWS, bulk_insert, is_postgresql
from workers.storage.orders import SqlOrderRepository

Now = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlStoreRepository:
    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now

    def get(self, store_id: str) -> Store | None:
        row = self.session.execute(
            select(t.stores).where(t.stores.c.store_id == store_id)
        ).one_or_none()
        if row is None:
            return None
        return Store(row.store_id, row.name, row.terms_url, tuple(row.agreement_currencies))

    def save(self, store: Store) -> None:
        values = {
            "name": store.name,
            "terms_url": store.terms_url,
            "agreement_currencies": list(store.agreement_currencies),
            "updated_at": self.now(),
        }
        updated = self.session.execute(
            t.stores.update().where(t.stores.c.store_id == store.store_id).values(**values)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.session.execute(insert(t.stores).values(store_id=store.store_id, **values))


def event_from_json(data: dict[str, object]) -> EventBase:
    return EVENT_TYPES[str(data["type"])].model_validate(data)


class SqlProcessedCommands:
    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now

    def get(self, command_id: UUID) -> ProcessedCommand | None:
        row = self.session.execute(
            select(t.processed_commands).where(t.processed_commands.c.command_id == command_id)
        ).one_or_none()
        if row is None:
            return None
        return self.get_row(row)

    @staticmethod
    def get_row(row: Any) -> ProcessedCommand:
        return ProcessedCommand(
            row.command_id,
            row.command_type,
            row.payload_hash,
            row.outcome,
            tuple(event_from_json(e) for e in row.events),
        )

    def add(self, record: ProcessedCommand) -> None:
        self.session.execute(insert(t.processed_commands).values(**self.row(record)))

    def row(self, record: ProcessedCommand) -> dict[str, object]:
        return {
            "command_id": record.command_id,
            "command_type": record.command_type,
            "payload_hash": record.payload_hash,
            "outcome": record.outcome,
            "events": [e.model_dump(mode="json") for e in record.events],
            "processed_at": self.now(),
        }


class SqlOutbox:
    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now
        self.rows: list[dict[str, object]] = []

    def add_event(self, event: EventBase) -> None:
        self.rows.append(
            {
                "kind": "event",
                "destination": event.type,
                "message_id": event.event_id,
                "order_id": event.order_id,
                "payload": event.model_dump_json(),
                "created_at": self.now(),
            }
        )

    def add_command(self, command: CommandBase) -> None:
        self.rows.append(
            {
                "kind": "command",
                "destination": route_for(command).queue_name,
                "message_id": command.command_id,
                "order_id": getattr(command, "order_id", None),
                "payload": command_bytes(command, message_id=str(command.command_id)).decode(),
                "created_at": self.now(),
            }
        )

    def flush(self) -> None:
        if self.rows:
            self.session.execute(insert(t.outbox), self.rows)
            self.rows = []


_UPSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlNotifications:
    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now

    def get(self, link_id: UUID) -> NotificationRecord | None:
        row = self.session.execute(
            select(t.notifications).where(t.notifications.c.link_id == link_id)
        ).one_or_none()
        if row is None:
            return None
        return NotificationRecord(
            link_id=row.link_id,
            order_id=row.order_id,
            channel=row.channel,
            state=NotificationState(row.state),
            attempts=row.attempts,
            uncertain_attempts=row.uncertain_attempts,
            provider=row.provider,
            provider_message_id=row.provider_message_id,
            error=row.error,
        )

    def save(self, record: NotificationRecord) -> None:
        values = {
            "order_id": record.order_id,
            "channel": record.channel,
            "state": record.state.value,
            "attempts": record.attempts,
            "uncertain_attempts": record.uncertain_attempts,
            "provider": record.provider,
            "provider_message_id": record.provider_message_id,
            "error": record.error,
            "updated_at": self.now(),
        }
        # One round trip: insert, or update the row a previous attempt left.
        dialect = self.session.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            upsert = _UPSERTS[dialect](t.notifications).values(link_id=record.link_id, **values)
            self.session.execute(
                upsert.on_conflict_do_update(index_elements=["link_id"], set_=values)
            )
            return
        updated = self.session.execute(
            t.notifications.update()
            .where(t.notifications.c.link_id == record.link_id)
            .values(**values)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.session.execute(insert(t.notifications).values(link_id=record.link_id, **values))


class SqlUnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session], now: Now = utcnow) -> None:
        self.session_factory = session_factory
        self.now = now

    def __enter__(self) -> Self:
        self.session = self.session_factory()
        self.orders = SqlOrderRepository(self.session)
        self.stores = SqlStoreRepository(self.session, self.now)
        self.processed = SqlProcessedCommands(self.session, self.now)
        self.outbox = SqlOutbox(self.session, self.now)
        self.notifications = SqlNotifications(self.session, self.now)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
        if isinstance(exc, DBAPIError):
            raise TransientError(f"database error: {type(exc.orig).__name__}") from exc

    def commit(self) -> None:
        try:
            self.orders.flush(self.now())
            self.outbox.flush()
            self.session.commit()
        except (IntegrityError, OperationalError) as exc:
            self.session.rollback()
            raise TransientError(
                f"database refused the commit ({type(exc.orig).__name__}); retrying"
            ) from exc

    def rollback(self) -> None:
        self.session.rollback()


# ---- many commands in one transaction (the scheduler's link expiries) -------------------


class SqlBatch:
    """Several commands applied in one transaction, each through its own unit of work.

    ``unit`` is a ``UowFactory``: ``domain.dispatch`` runs unchanged (idempotency,
    rejections, events) against units that share one session. A unit's ``commit``
    stages its writes; a unit left without commit (a ``DomainError``) discards what it
    staged and the aggregates it touched. ``flush`` writes everything staged, one
    executemany per table; the caller commits the transaction. Orders are expected
    to be locked by the caller (``preload``); processed-command records are read in
    one query.
    """

    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now
        self.orders = SqlOrderRepository(session)
        self.known: dict[UUID, ProcessedCommand | None] = {}
        self.processed_rows: list[dict[str, object]] = []
        self.outbox_rows: list[dict[str, object]] = []

    def preload(self, order_ids: list[UUID], command_ids: list[UUID]) -> None:
        self.orders.load_many(order_ids)
        reader = SqlProcessedCommands(self.session, self.now)
        self.known = dict.fromkeys(command_ids)
        for row in self.session.execute(
            select(t.processed_commands).where(t.processed_commands.c.command_id.in_(command_ids))
        ):
            self.known[row.command_id] = reader.get_row(row)

    def unit(self) -> _BatchUnit:
        return _BatchUnit(self)

    def flush(self) -> None:
        self.orders.flush(self.now())
        bulk = is_postgresql(self.session)
        for table, rows in (
            (t.processed_commands, self.processed_rows),
            (t.outbox, self.outbox_rows),
        ):
            if bulk and len(rows) >= BULK_MIN_ROWS:
                bulk_insert(self.session, table, rows)
            elif rows:
                self.session.execute(insert(table), rows)
        self.processed_rows, self.outbox_rows = [], []


class _BatchOrders:
    """The batch's repository, remembering which orders this unit touched."""

    def __init__(self, repo: SqlOrderRepository) -> None:
        self.repo = repo
        self.touched: set[UUID] = set()

    def add(self, order: Order) -> None:
        self.touched.add(order.order_id)
        self.repo.add(order)

    def get(self, order_id: UUID) -> Order | None:
        return self.repo.get(order_id)

    def get_for_update(self, order_id: UUID) -> Order | None:
        self.touched.add(order_id)
        return self.repo.get_for_update(order_id)

    def get_by_token_for_update(self, token_hash: str) -> Order | None:
        order = self.repo.get_by_token_for_update(token_hash)
        if order is not None:
            self.touched.add(order.order_id)
        return order


class _StagedProcessed(SqlProcessedCommands):
    def __init__(self, batch: SqlBatch) -> None:
        super().__init__(batch.session, batch.now)
        self.batch = batch
        self.staged: list[tuple[ProcessedCommand, dict[str, object]]] = []

    def get(self, command_id: UUID) -> ProcessedCommand | None:
        if command_id in self.batch.known:
            return self.batch.known[command_id]
        return super().get(command_id)

    def add(self, record: ProcessedCommand) -> None:
        self.staged.append((record, self.row(record)))


class _BatchUnit:
    def __init__(self, batch: SqlBatch) -> None:
        self.batch = batch
        self.committed = False

    def __enter__(self) -> Self:
        b = self.batch
        self.orders = _BatchOrders(b.orders)
        self.stores = SqlStoreRepository(b.session, b.now)
        self.processed = _StagedProcessed(b)
        self.outbox = SqlOutbox(b.session, b.now)
        self.notifications = SqlNotifications(b.session, b.now)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.committed:
            # Discard: the rows stay as they are (still locked by the batch's transaction).
            for order_id in self.orders.touched:
                self.batch.orders.loaded.pop(order_id, None)
        if isinstance(exc, DBAPIError):
            raise TransientError(f"database error: {type(exc.orig).__name__}") from exc

    def commit(self) -> None:
        b = self.batch
        for record, row in self.processed.staged:
            b.known[record.command_id] = record
            b.processed_rows.append(row)
        b.outbox_rows.extend(self.outbox.rows)
        self.outbox.rows = []
        self.processed.staged = []
        self.committed = True

    def rollback(self) -> None:
        self.processed.staged = []
        self.outbox.rows = []
