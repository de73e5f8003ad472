"""In-memory adapters of the domain ports: unit tests run handlers without services.

Each unit of work works on deep copies and writes them back only on commit, so a
handler that raises leaves the state exactly as it found it (like a rollback).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Self
from uuid import UUID

from domain.notifications import DeliveryReceipt, PaymentLinkNotification, Trace
from domain.order import Order
from domain.ports import Context, NotificationRecord, ProcessedCommand
from domain.reminders import ReminderDeadline
from domain.store import Store
from messages.common import CommandBase, EventBase


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 11, 21, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class SequentialTokens:
    def __init__(self) -> None:
        self.issued: list[str] = []

    def new_token(self) -> str:
        token = f"tok{len(self.issued):040d}"
        self.issued.append(token)
        return token


@dataclass
class RecordingNotifier:
    sent: list[PaymentLinkNotification] = field(default_factory=list)
    fail_with: Exception | None = None
    #: Whether ``find`` can tell (a provider like the local outbox) or not (SendGrid).
    can_find: bool = True
    looked_up: list[PaymentLinkNotification] = field(default_factory=list)

    def send(self, notification: PaymentLinkNotification) -> DeliveryReceipt:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(notification)
        return _receipt(len(self.sent))

    def find(self, notification: PaymentLinkNotification) -> DeliveryReceipt | Trace:
        self.looked_up.append(notification)
        if not self.can_find:
            return Trace.UNKNOWN
        ids = [n.notification_id for n in self.sent]
        if notification.notification_id in ids:
            return _receipt(ids.index(notification.notification_id) + 1)
        return Trace.NOT_SENT


def _receipt(number: int) -> DeliveryReceipt:
    return DeliveryReceipt("recording", f"msg-{number}")


@dataclass
class Database:
    orders: dict[UUID, Order] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    processed: dict[UUID, ProcessedCommand] = field(default_factory=dict)
    notifications: dict[UUID, NotificationRecord] = field(default_factory=dict)
    events: list[EventBase] = field(default_factory=list)
    commands: list[CommandBase] = field(default_factory=list)
    #: Reminder deadlines by link id, as the scheduler's table keeps them.
    reminders: dict[UUID, ReminderDeadline] = field(default_factory=dict)
    commits: int = 0


class _Orders:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def add(self, order: Order) -> None:
        self.uow.loaded[order.order_id] = order

    def get(self, order_id: UUID) -> Order | None:
        if order_id in self.uow.loaded:
            return self.uow.loaded[order_id]
        stored = self.uow.db.orders.get(order_id)
        return copy.deepcopy(stored) if stored else None

    def ids_by_customer(
        self, store_id: str, *, email: str | None = None, phone: str | None = None
    ) -> list[UUID]:
        return sorted(
            o.order_id
            for o in self.uow.db.orders.values()
            if o.store_id == store_id
            and (o.customer.email == email if email is not None else o.customer.phone == phone)
        )

    def get_for_update(self, order_id: UUID) -> Order | None:
        order = self.get(order_id)
        if order is not None:
            self.uow.loaded[order_id] = order
        return order

    def get_by_token_for_update(self, token_hash: str) -> Order | None:
        for order in self.uow.db.orders.values():
            if any(link.token_hash == token_hash for link in order.links):
                return self.get_for_update(order.order_id)
        return None


class _Stores:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, store_id: str) -> Store | None:
        return self.uow.pending_stores.get(store_id) or copy.deepcopy(
            self.uow.db.stores.get(store_id)
        )

    def save(self, store: Store) -> None:
        self.uow.pending_stores[store.store_id] = store


class _Processed:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, command_id: UUID) -> ProcessedCommand | None:
        return self.uow.pending_processed.get(command_id) or self.uow.db.processed.get(command_id)

    def add(self, record: ProcessedCommand) -> None:
        self.uow.pending_processed[record.command_id] = record


class _Outbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def add_event(self, event: EventBase) -> None:
        self.uow.events.append(event)

    def add_command(self, command: CommandBase) -> None:
        self.uow.commands.append(command)


class _Notifications:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def get(self, link_id: UUID) -> NotificationRecord | None:
        found = self.uow.notes.get(link_id) or self.uow.db.notifications.get(link_id)
        return copy.deepcopy(found)

    def save(self, record: NotificationRecord) -> None:
        self.uow.notes[record.link_id] = copy.deepcopy(record)


class _Reminders:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def schedule(self, deadline: ReminderDeadline) -> None:
        if deadline.link_id not in self.uow.db.reminders:
            self.uow.pending_reminders.setdefault(deadline.link_id, deadline)


class FakeUnitOfWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.orders = _Orders(self)
        self.stores = _Stores(self)
        self.processed = _Processed(self)
        self.outbox = _Outbox(self)
        self.notifications = _Notifications(self)
        self.reminders = _Reminders(self)

    def __enter__(self) -> Self:
        self.loaded: dict[UUID, Order] = {}
        self.pending_stores: dict[str, Store] = {}
        self.pending_processed: dict[UUID, ProcessedCommand] = {}
        self.notes: dict[UUID, NotificationRecord] = {}
        self.pending_reminders: dict[UUID, ReminderDeadline] = {}
        self.events: list[EventBase] = []
        self.commands: list[CommandBase] = []
        return self

    def __exit__(self, *exc: object) -> None:
        self.loaded = {}

    #: Open scopes: a commit inside one would commit half a group (the SQL one refuses too).
    scopes = 0

    def commit(self) -> None:
        if self.scopes:
            raise RuntimeError("commit inside UnitOfWork.scope(): commit the group after it")
        for order in self.loaded.values():
            order.check_invariants()
            order.events.clear()
            self.db.orders[order.order_id] = copy.deepcopy(order)
        self.db.stores.update(copy.deepcopy(self.pending_stores))
        self.db.processed.update(self.pending_processed)
        self.db.notifications.update(copy.deepcopy(self.notes))
        self.db.reminders.update(self.pending_reminders)
        self.db.events.extend(self.events)
        self.db.commands.extend(self.commands)
        self.db.commits += 1
        self.__enter__()

    def rollback(self) -> None:
        self.__enter__()

    _STAGED = (
        "loaded",
        "pending_stores",
        "pending_processed",
        "notes",
        "pending_reminders",
        "events",
        "commands",
    )

    @contextmanager
    def scope(self) -> Iterator[None]:
        staged = {name: copy.deepcopy(getattr(self, name)) for name in self._STAGED}
        self.scopes += 1
        try:
            yield
        except BaseException:
            for name, value in staged.items():
                setattr(self, name, value)
            raise
        finally:
            self.scopes -= 1

    def prefetch(self, **_ids: object) -> None:
        """Everything is in memory already."""


def make_context(
    clock: FakeClock | None = None, notifier: RecordingNotifier | None = None
) -> Context:
    return Context(
        clock=clock or FakeClock(),
        tokens=SequentialTokens(),
        notifier=notifier or RecordingNotifier(),
    )
