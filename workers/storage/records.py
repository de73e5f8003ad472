"""The unit of work's small repositories: stores, processed commands, notification
records and the outbox. Each stages its writes until commit, so that a scope
(``UnitOfWork.scope``) can drop one command's writes by restoring what it staged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from sqlalchemy import Insert, RowMapping, Select, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.ports import NotificationRecord, NotificationState, ProcessedCommand
from domain.store import Store
from messages.common import CommandBase, EventBase
from messages.events import EVENT_TYPES
from messages.routing import command_bytes, event_routing_key, route_for
from workers.storage import tables as t
from workers.storage.bulk import BULK_MIN_ROWS, bulk_insert, insert_rows, is_postgresql

Now = Callable[[], datetime]
Row = dict[str, object]

K = TypeVar("K", str, UUID)
V = TypeVar("V", Store, NotificationRecord, ProcessedCommand)


@lru_cache(maxsize=8)
def _upsert(dialect: str, table: Table, key: str) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE every other column, in the session's dialect."""
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        updated = {c.name: lite.excluded[c.name] for c in table.columns if c.name != key}
        return lite.on_conflict_do_update(index_elements=[key], set_=updated)
    pg = postgresql.insert(table)
    updated = {c.name: pg.excluded[c.name] for c in table.columns if c.name != key}
    return pg.on_conflict_do_update(index_elements=[key], set_=updated)


def upsert(session: Session, table: Table, key: str, rows: Sequence[Mapping[str, object]]) -> None:
    """One statement: insert each row, or update the row its key already has."""
    if len(rows) >= BULK_MIN_ROWS and is_postgresql(session):
        bulk_insert(session, table, rows, upsert_key=key)
    elif rows:
        session.execute(_upsert(session.get_bind().dialect.name, table, key), rows)


class _Records(Generic[K, V]):
    """Records read by key: one at a time, or what ``prefetch`` read in one statement."""

    table: ClassVar[Table]
    key: ClassVar[str]

    def __init__(self, session: Session, now: Now) -> None:
        self.session: Session = session
        self.now: Now = now
        #: Prefetched or staged records; None: known not to exist.
        self.known: dict[K, V | None] = {}
        # Statements built once: the values travel as parameters, so SQLAlchemy neither
        # builds nor checks a statement object per command (the notification upsert
        # measured 0.72 -> 0.28 ms per call under cProfile).
        self._one, self._many = _by_key(self.table, self.key)

    def _record(self, row: RowMapping) -> V:
        raise NotImplementedError

    def prefetch(self, keys: Sequence[K]) -> None:
        wanted = [k for k in dict.fromkeys(keys) if k not in self.known]
        if wanted:
            rows = self.session.execute(self._many, {"keys": wanted}).mappings()
            found = {row[self.key]: self._record(row) for row in rows}
            self.known.update({k: found.get(k) for k in wanted})

    def get(self, key: K) -> V | None:
        """A copy: a caller changing it changes nothing staged until it saves it."""
        if key in self.known:
            return copy.copy(self.known[key])
        row = self.session.execute(self._one, {"key": key}).mappings().one_or_none()
        return None if row is None else self._record(row)


@lru_cache(maxsize=8)
def _by_key(table: Table, key: str) -> tuple[Select[tuple[object]], Select[tuple[object]]]:
    column = table.c[key]
    return (
        select(table).where(column == bindparam("key")),
        select(table).where(column.in_(bindparam("keys", expanding=True))),
    )


class _SavedRecords(_Records[K, V]):
    """Saved records are written at commit, one upsert for them all."""

    def __init__(self, session: Session, now: Now) -> None:
        super().__init__(session, now)
        self.pending: dict[K, V] = {}

    def _key_of(self, record: V) -> K:
        raise NotImplementedError

    def _row(self, record: V) -> Row:
        raise NotImplementedError

    def save(self, record: V) -> None:
        key = self._key_of(record)
        self.known[key] = self.pending[key] = copy.copy(record)

    @contextmanager
    def scope(self) -> Iterator[None]:
        known, pending = dict(self.known), dict(self.pending)
        try:
            yield
        except BaseException:
            self.known, self.pending = known, pending
            raise

    def flush(self) -> None:
        now = self.now()
        rows = [{**self._row(r), "updated_at": now} for r in self.pending.values()]
        self.pending = {}
        upsert(self.session, self.table, self.key, rows)


class SqlStoreRepository(_SavedRecords[str, Store]):
    table, key = t.stores, "store_id"

    def _record(self, row: RowMapping) -> Store:
        currencies = tuple(row["agreement_currencies"])
        return Store(
            row["store_id"],
            row["name"],
            row["terms_url"],
            currencies,
            row["sms_fallback"],
            row["reminder_hours_before"],
        )

    def _key_of(self, record: Store) -> str:
        return record.store_id

    def _row(self, record: Store) -> Row:
        return {
            "store_id": record.store_id,
            "name": record.name,
            "terms_url": record.terms_url,
            "agreement_currencies": list(record.agreement_currencies),
            "sms_fallback": record.sms_fallback,
            "reminder_hours_before": record.reminder_hours_before,
        }


class SqlNotifications(_SavedRecords[UUID, NotificationRecord]):
    table, key = t.notifications, "link_id"

    def _record(self, row: RowMapping) -> NotificationRecord:
        return NotificationRecord(
            link_id=row["link_id"],
            order_id=row["order_id"],
            channel=row["channel"],
            state=NotificationState(row["state"]),
            attempts=row["attempts"],
            uncertain_attempts=row["uncertain_attempts"],
            blind_resends=row["blind_resends"],
            provider=row["provider"],
            provider_message_id=row["provider_message_id"],
            error=row["error"],
            report=row["report"],
            report_reason=row["report_reason"],
        )

    def _key_of(self, record: NotificationRecord) -> UUID:
        return record.link_id

    def _row(self, record: NotificationRecord) -> Row:
        return {
            "link_id": record.link_id,
            "order_id": record.order_id,
            "channel": record.channel,
            "state": record.state.value,
            "attempts": record.attempts,
            "uncertain_attempts": record.uncertain_attempts,
            "blind_resends": record.blind_resends,
            "provider": record.provider,
            "provider_message_id": record.provider_message_id,
            "error": record.error,
            "report": record.report,
            "report_reason": record.report_reason,
        }


def event_from_json(data: Mapping[str, object]) -> EventBase:
    return EVENT_TYPES[str(data["type"])].model_validate(data)


class SqlProcessedCommands(_Records[UUID, ProcessedCommand]):
    """Records are only added (a command is processed once), all in one insert at commit."""

    table, key = t.processed_commands, "command_id"

    def __init__(self, session: Session, now: Now) -> None:
        super().__init__(session, now)
        self.rows: list[Row] = []

    def _record(self, row: RowMapping) -> ProcessedCommand:
        return ProcessedCommand(
            row["command_id"],
            row["command_type"],
            row["payload_hash"],
            row["outcome"],
            tuple(event_from_json(e) for e in row["events"]),
        )

    def get(self, command_id: UUID) -> ProcessedCommand | None:
        # Frozen: no copy needed.
        if command_id in self.known:
            return self.known[command_id]
        return super().get(command_id)

    def add(self, record: ProcessedCommand) -> None:
        self.known[record.command_id] = record
        self.rows.append(
            {
                "command_id": record.command_id,
                "command_type": record.command_type,
                "payload_hash": record.payload_hash,
                "outcome": record.outcome,
                "events": [e.model_dump(mode="json") for e in record.events],
                "processed_at": self.now(),
            }
        )

    @contextmanager
    def scope(self) -> Iterator[None]:
        known, staged = dict(self.known), len(self.rows)
        try:
            yield
        except BaseException:
            self.known = known
            del self.rows[staged:]
            raise

    def flush(self) -> None:
        insert_rows(self.session, t.processed_commands, self.rows)
        self.rows = []


class SqlOutbox:
    def __init__(self, session: Session, now: Now) -> None:
        self.session, self.now = session, now
        self.rows: list[Row] = []
        #: The same events for ``event_history``, which outlives the published outbox row.
        self.history: list[Row] = []

    def add_event(self, event: EventBase) -> None:
        row: Row = {
            "destination": event.type,
            "message_id": event.event_id,
            "order_id": event.order_id,
            "payload": event.model_dump_json(),
            "created_at": self.now(),
        }
        # The outbox keeps the routing key the relay publishes with; the history the type.
        key = event_routing_key(event.type, event.store_id)
        self.rows.append({**row, "kind": "event", "destination": key})
        self.history.append(row)

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

    @contextmanager
    def scope(self) -> Iterator[None]:
        rows, history = len(self.rows), len(self.history)
        try:
            yield
        except BaseException:
            del self.rows[rows:]
            del self.history[history:]
            raise

    def flush(self) -> None:
        insert_rows(self.session, t.outbox, self.rows)
        insert_rows(self.session, t.event_history, self.history)
        self.rows, self.history = [], []
