"""UnitOfWork.scope(): one command's writes inside a group, kept or discarded whole.

One contract, run against the fake and the SQL unit of work (SQLite and PostgreSQL):
what a kept scope staged is committed with the group; what a raising scope staged is
not, and the orders it touched are committed as they were when it began.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import func, select

from domain.handlers import configure_store, create_order, resend_payment_link
from domain.order import Order
from domain.ports import (
    Context,
    NotificationRecord,
    NotificationState,
    ProcessedCommand,
    UnitOfWork,
)
from messages import commands as c
from tests.fakes import Database, FakeUnitOfWork, make_context
from tests.services import require_postgres
from workers.devtools import commands
from workers.devtools.harness import create_database, drop_database
from workers.storage import tables as t
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.migrate import upgrade
from workers.storage.orders import _copy
from workers.storage.uow import SqlUnitOfWork

pytestmark = pytest.mark.integration


class Backend(Protocol):
    def uow(self) -> UnitOfWork: ...
    def outbox_size(self) -> int:
        """Events and commands committed to the outbox."""
        ...

    def reminders(self) -> int:
        """Reminder deadlines committed."""
        ...


class FakeBackend:
    def __init__(self) -> None:
        self.db = Database()

    def uow(self) -> UnitOfWork:
        return FakeUnitOfWork(self.db)

    def outbox_size(self) -> int:
        return len(self.db.events) + len(self.db.commands)

    def reminders(self) -> int:
        return len(self.db.reminders)


class SqlBackend:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def uow(self) -> UnitOfWork:
        return SqlUnitOfWork(self.sessions)

    def outbox_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.outbox)).scalar_one())

    def reminders(self) -> int:
        with self.engine.connect() as conn:
            count = select(func.count()).select_from(t.link_reminders)
            return int(conn.execute(count).scalar_one())


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "fake":
        yield FakeBackend()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/paylink.db"
        upgrade(url)
        sql = SqlBackend(url)
        yield sql
        sql.engine.dispose()
        return
    require_postgres()
    url = create_database("paylink_scope")
    sql = SqlBackend(url)
    yield sql
    sql.engine.dispose()
    drop_database(url)


class Refused(Exception):
    """What a command inside the scope raises."""


def _create(uow: UnitOfWork, ctx: Context) -> uuid.UUID:
    """A CreateOrder's writes: the order, its events and follow-up command in the
    outbox, its processed record and a notification record for its link."""
    cmd = commands.create_order()
    events = create_order(cmd, uow, ctx)
    for event in list(events):
        uow.outbox.add_event(event)
    uow.processed.add(ProcessedCommand(cmd.command_id, "CreateOrder", "digest", "accepted"))
    order = uow.orders.get(cmd.order_id)
    if order is None or order.current_link is None:
        raise AssertionError("the created order is not in the unit of work")
    uow.notifications.save(
        NotificationRecord(
            order.current_link.link_id, order.order_id, "email", NotificationState.ATTEMPTING
        )
    )
    return cmd.order_id


def _resend(order_id: uuid.UUID, uow: UnitOfWork, ctx: Context) -> None:
    """A ResendPaymentLink's writes: a new link, the old one superseded in place, its
    event and SendPaymentLink in the outbox (two rows)."""
    cmd = commands.merchant(c.ResendPaymentLink, order_id)
    for event in list(resend_payment_link(cmd, uow, ctx)):
        uow.outbox.add_event(event)


def _links(order: Order | None) -> list[bool]:
    """Whether each of the order's links is superseded."""
    if order is None:
        raise AssertionError("no order")
    return [link.superseded for link in order.links]


def _committed_order(backend: Backend, order_id: uuid.UUID) -> Order | None:
    with backend.uow() as uow:
        return uow.orders.get(order_id)


def _given_a_store(backend: Backend, **store: object) -> Context:
    ctx = make_context()
    with backend.uow() as uow:
        configure_store(commands.configure_store(**store), uow, ctx)
        uow.commit()
    return ctx


def _given_a_committed_order(backend: Backend, ctx: Context) -> uuid.UUID:
    with backend.uow() as uow:
        order_id = _create(uow, ctx)
        uow.commit()
    return order_id


def _raising(uow: UnitOfWork, body: Callable[[], object]) -> None:
    """``body`` in a scope that then raises; the exception reaches the caller."""

    def command() -> None:
        with uow.scope():
            body()
            raise Refused

    with pytest.raises(Refused):
        command()


def test_a_kept_scope_is_committed_with_the_group(backend: Backend) -> None:
    # Given a configured store
    ctx = _given_a_store(backend)
    # When a command runs in a scope that exits normally, and the group commits
    with backend.uow() as uow:
        with uow.scope():
            order_id = _create(uow, ctx)
        uow.commit()
    # Then its order, outbox rows, processed record and notification record are there
    order = _committed_order(backend, order_id)
    assert order is not None
    assert order.current_link is not None
    assert backend.outbox_size() == 2  # OrderCreated, SendPaymentLink
    with backend.uow() as uow:
        assert uow.notifications.get(order.current_link.link_id) is not None


def test_a_raising_scope_leaves_no_trace_and_the_group_goes_on(backend: Backend) -> None:
    # Given a configured store
    ctx = _given_a_store(backend)
    refused: list[uuid.UUID] = []

    def command() -> None:
        refused.append(_create(uow, ctx))
        configure_store(commands.configure_store(store_name="Never saved"), uow, ctx)

    # When one command's scope raises after staging everything, the next one is kept
    with backend.uow() as uow:
        _raising(uow, command)
        with uow.scope():
            kept = _create(uow, ctx)
        uow.commit()
    # Then only the kept command's writes are committed
    [order_id] = refused
    assert _committed_order(backend, order_id) is None
    assert _committed_order(backend, kept) is not None
    assert backend.outbox_size() == 2
    with backend.uow() as uow:
        store = uow.stores.get(commands.STORE)
        assert store is not None
        assert store.name == "Nordic Shoes"


def test_a_raising_scope_leaves_no_notification_record(
    backend: Backend,
) -> None:
    # Given a configured store
    ctx = _given_a_store(backend)
    links: list[uuid.UUID] = []

    def command() -> None:
        order = uow.orders.get(_create(uow, ctx))
        if order is None or order.current_link is None:
            raise AssertionError("the created order is not in the unit of work")
        links.append(order.current_link.link_id)

    # When the scope raises, and the group commits
    with backend.uow() as uow:
        _raising(uow, command)
        # Then the same transaction no longer knows its notification record
        assert uow.notifications.get(links[0]) is None
        uow.commit()
    # And none was committed, nor any outbox row
    with backend.uow() as uow:
        assert uow.notifications.get(links[0]) is None
    assert backend.outbox_size() == 0


def test_a_processed_record_of_a_raising_scope_is_forgotten(backend: Backend) -> None:
    # Given a unit of work
    command_id = uuid.uuid4()
    record = ProcessedCommand(command_id, "CreateOrder", "digest", "accepted")
    # When a scope records a processed command and raises
    with backend.uow() as uow:
        _raising(uow, lambda: uow.processed.add(record))
        # Then the same transaction no longer knows it
        assert uow.processed.get(command_id) is None
        uow.commit()
    # And nothing was committed
    with backend.uow() as uow:
        assert uow.processed.get(command_id) is None


def test_an_order_changed_in_a_raising_scope_is_committed_as_the_kept_scopes_left_it(
    backend: Backend,
) -> None:
    # Given a committed order with one link
    ctx = _given_a_store(backend)
    order_id = _given_a_committed_order(backend, ctx)
    outbox_before = backend.outbox_size()
    # When a kept scope resends its link, and a later scope resends again and raises
    with backend.uow() as uow:
        with uow.scope():
            _resend(order_id, uow, ctx)
        _raising(uow, lambda: _resend(order_id, uow, ctx))
        # Then inside the transaction the order is as the kept scope left it
        assert _links(uow.orders.get_for_update(order_id)) == [True, False]
        uow.commit()
    # And so it is committed, with the kept scope's outbox rows only
    assert _links(_committed_order(backend, order_id)) == [True, False]
    assert backend.outbox_size() == outbox_before + 2


def test_an_order_changed_only_in_a_raising_scope_is_committed_unchanged(
    backend: Backend,
) -> None:
    # Given a committed order with one link, prefetched (locked) by the group
    ctx = _given_a_store(backend)
    order_id = _given_a_committed_order(backend, ctx)
    outbox_before = backend.outbox_size()
    with backend.uow() as uow:
        uow.prefetch(order_ids=[order_id], lock=True)
        # When the only scope that changes it (its link superseded in place) raises
        _raising(uow, lambda: _resend(order_id, uow, ctx))
        uow.commit()
    # Then the order is committed as it was
    assert _links(_committed_order(backend, order_id)) == [False]
    assert backend.outbox_size() == outbox_before


def test_a_notification_changed_in_place_in_a_raising_scope_keeps_its_kept_state(
    backend: Backend,
) -> None:
    # Given a committed order whose notification record was saved once
    ctx = _given_a_store(backend)
    order_id = _given_a_committed_order(backend, ctx)
    order = _committed_order(backend, order_id)
    assert order is not None
    assert order.current_link is not None
    link_id = order.current_link.link_id

    def attempt(uow: UnitOfWork) -> None:
        record = uow.notifications.get(link_id)
        if record is None:
            raise AssertionError("no notification record")
        record.attempts += 1
        uow.notifications.save(record)
        record.attempts += 10  # changed after save: not staged

    # When one scope counts an attempt, and a second counts one and raises
    with backend.uow() as uow:
        with uow.scope():
            attempt(uow)
        _raising(uow, lambda: attempt(uow))
        uow.commit()
    # Then the kept attempt alone is committed
    with backend.uow() as uow:
        record = uow.notifications.get(link_id)
        assert record is not None
        assert record.attempts == 1


def test_a_raising_inner_scope_discards_only_its_own_writes(backend: Backend) -> None:
    # Given a committed order
    ctx = _given_a_store(backend)
    order_id = _given_a_committed_order(backend, ctx)
    outbox_before = backend.outbox_size()
    # When an outer scope resends its link, and an inner scope resends again and raises
    with backend.uow() as uow:
        with uow.scope():
            _resend(order_id, uow, ctx)
            _raising(uow, lambda: _resend(order_id, uow, ctx))
        uow.commit()
    # Then the outer scope's change and outbox rows are committed, the inner one's not
    assert _links(_committed_order(backend, order_id)) == [True, False]
    assert backend.outbox_size() == outbox_before + 2


@pytest.mark.parametrize("backend", ["fake", "sqlite", "postgresql"], indirect=True)
def test_committing_inside_a_scope_is_refused(backend: Backend) -> None:
    # Given a scope with a staged order
    ctx = _given_a_store(backend)
    with backend.uow() as uow, uow.scope():
        _create(uow, ctx)
        # When the command commits inside it, Then that is refused
        with pytest.raises(RuntimeError, match=r"inside UnitOfWork\.scope"):
            uow.commit()


def test_a_copied_order_shares_nothing_a_command_changes() -> None:
    """The SQL scope copies orders field by field: a new field of ``Order`` must be
    looked at there (``workers.storage.orders._copy``) before this list is extended."""
    # Given an order with a link, built by the create handler
    backend = FakeBackend()
    order_id = _given_a_committed_order(backend, _given_a_store(backend))
    order = backend.db.orders[order_id]
    assert order.current_link is not None
    # When a copy is changed in every part a command may change
    state = _copy(order)
    state.customer.erase()
    state.links[0].superseded = True
    state.links.append(dataclasses.replace(order.current_link, link_id=uuid.uuid4()))
    # Then the original is as it was, and its lists are its own
    assert order.customer.email == "anna@example.com"
    assert not order.links[0].superseded
    assert len(order.links) == 1
    assert state.ledger is not order.ledger
    assert state.events is not order.events
    assert {f.name for f in dataclasses.fields(Order)} == {
        *("order_id", "store_id", "created_by", "created_at", "customer"),
        *("purchase_country", "currency", "merchant_reference1", "merchant_reference2"),
        *("lines", "auto_capture", "link_status", "links", "authorization_id"),
        *("completed_at", "reservation_expires_at", "ledger", "events", "_cause", "_now"),
    }


def test_a_raising_scope_leaves_no_reminder_deadline(backend: Backend) -> None:
    # Given a store that reminds customers 6 hours before a link expires
    ctx = _given_a_store(backend, reminder_hours_before=6)
    # When one create's scope raises and the next one's is kept
    with backend.uow() as uow:
        _raising(uow, lambda: _create(uow, ctx))
        with uow.scope():
            _create(uow, ctx)
        uow.commit()
    # Then only the kept order's link has its reminder
    assert backend.reminders() == 1
