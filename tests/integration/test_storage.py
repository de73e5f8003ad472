"""The SQL unit of work behind the domain ports, on SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain.bus import handle
from domain.ports import Context
from messages import commands as c
from messages.routing import event_type_of
from tests.fakes import FakeClock, RecordingNotifier, SequentialTokens
from workers.devtools.commands import (
    ADMIN,
    ORDER_AMOUNT,
    STORE,
    completed,
    configure_store,
    create_order,
    merchant,
)
from workers.processes.scheduler import link_expiry_id, release_due
from workers.storage import tables as t
from workers.storage.engine import make_engine, make_session_factory
from workers.storage.uow import SqlUnitOfWork

pytestmark = pytest.mark.integration


class Env:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.clock = FakeClock()
        self.notifier = RecordingNotifier()
        self.ctx = Context(clock=self.clock, tokens=SequentialTokens(), notifier=self.notifier)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, now=self.clock.now)

    def run(self, cmd: c.CommandBase):  # type: ignore[no-untyped-def]
        return handle(cmd, self.uow, self.ctx)

    def outbox(self, kind: str) -> list[str]:
        """Queue names of commands, or event types of events (their routing keys are
        ``<store>.<type>``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox.c.destination)
                .where(t.outbox.c.kind == kind)
                .order_by(t.outbox.c.id)
            )
            keys = [r.destination for r in rows]
        return [event_type_of(k) for k in keys] if kind == "event" else keys

    def ready_order(self) -> uuid.UUID:
        assert self.run(configure_store()).status == "accepted"
        cmd = create_order()
        assert self.run(cmd).status == "accepted"
        sends = [cm for cm in self._commands() if cm["actor_name"] == "send_payment_link"]
        send_cmd = c.SendPaymentLink.model_validate(sends[-1]["args"][0])
        assert self.run(send_cmd).status == "accepted"
        token = self.notifier.sent[-1].link_url.rsplit("/", 1)[1]
        assert self.run(completed(token)).status == "accepted"
        return cmd.order_id

    def _commands(self) -> list[dict]:  # type: ignore[type-arg]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox.c.payload)
                .where(t.outbox.c.kind == "command")
                .order_by(t.outbox.c.id)
            )
            return [json.loads(r.payload) for r in rows]


def test_lifecycle_persists_order_ledger_links_and_outbox(database_url: str) -> None:
    env = Env(database_url)
    order_id = env.ready_order()
    assert env.run(merchant(c.CapturePayment, order_id, amount=40_000)).status == "accepted"
    assert env.run(merchant(c.RefundPayment, order_id, amount=10_000)).status == "accepted"

    with env.uow() as uow:
        order = uow.orders.get(order_id)
    assert order is not None
    assert order.status == "PART_REFUNDED"
    assert order.order_amount == ORDER_AMOUNT
    assert [e.kind.value for e in order.ledger] == ["authorization", "capture", "refund"]
    assert order.customer.email == "anna@example.com"
    assert all(len(link.token_hash) == 64 for link in order.links)
    assert env.outbox("event") == [
        "store.configured",
        "order.created",
        "link.sent",
        "order.completed",
        "payment.captured",
        "payment.refunded",
    ]
    with env.engine.connect() as conn:
        row = conn.execute(select(t.orders).where(t.orders.c.order_id == order_id)).one()
    assert (row.status, row.link_status, row.link_due_at) == ("PART_REFUNDED", "COMPLETED", None)
    assert row.reservation_due_at == order.reservation_expires_at


def test_rejection_rolls_back_the_change_and_records_the_event(database_url: str) -> None:
    env = Env(database_url)
    order_id = env.ready_order()
    out = env.run(merchant(c.CapturePayment, order_id, amount=ORDER_AMOUNT + 1))
    assert out.code == "CAPTURE_EXCEEDS_REMAINING"
    with env.uow() as uow:
        order = uow.orders.get(order_id)
        assert order is not None
        assert [e.kind.value for e in order.ledger] == ["authorization"]
        processed = uow.processed.get(out.command_id)
    assert processed is not None
    assert processed.outcome == "rejected"
    assert env.outbox("event")[-1] == "order.rejected"


def test_duplicate_replays_the_same_events_without_a_second_effect(database_url: str) -> None:
    env = Env(database_url)
    order_id = env.ready_order()
    capture = merchant(c.CapturePayment, order_id, amount=1_000)
    first = env.run(capture)
    again = env.run(capture)
    assert again.status == "duplicate"
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    with env.engine.connect() as conn:
        captures = conn.execute(
            select(func.count())
            .select_from(t.ledger_entries)
            .where(t.ledger_entries.c.kind == "capture")
        ).scalar()
    assert captures == 1


def test_concurrent_captures_are_serialized_by_the_database(database_url: str) -> None:
    env = Env(database_url)
    order_id = env.ready_order()
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def capture() -> None:
        from domain.errors import TransientError

        cmd = merchant(c.CapturePayment, order_id, amount=10_000)
        for _ in range(20):
            try:
                outcomes.append(env.run(cmd).status)
                return
            except TransientError:
                continue
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=capture) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    with env.uow() as uow:
        order = uow.orders.get(order_id)
    assert order is not None
    assert order.balance.captured <= ORDER_AMOUNT
    assert outcomes.count("accepted") == order.balance.captured // 10_000 == ORDER_AMOUNT // 10_000


def test_scheduler_releases_due_link_expiries_once(database_url: str) -> None:
    env = Env(database_url)
    assert env.run(configure_store()).status == "accepted"
    cmd = create_order()
    assert env.run(cmd).status == "accepted"
    with env.engine.connect() as conn:
        due = conn.execute(
            select(t.orders.c.link_due_at).where(t.orders.c.order_id == cmd.order_id)
        ).scalar_one()
    early = due.replace(microsecond=0) - timedelta(seconds=1)
    assert release_due(env.sessions, early, 100, apply_links=False) == (0, 0)
    assert release_due(env.sessions, due, 100, apply_links=False) == (1, 0)
    # released: not again until REPUBLISH_AFTER
    assert release_due(env.sessions, due, 100, apply_links=False) == (0, 0)
    expire = c.ExpirePaymentLink.model_validate(env._commands()[-1]["args"][0])
    env.clock.current = due
    assert env.run(expire).status == "accepted"
    with env.engine.connect() as conn:
        row = conn.execute(select(t.orders).where(t.orders.c.order_id == cmd.order_id)).one()
    assert (row.link_status, row.link_due_at) == ("EXPIRED", None)


def test_scheduler_applies_due_link_expiries_like_the_aggregate(database_url: str) -> None:
    """25 due links (the PostgreSQL bulk path), one completed in time, one whose row says
    due while its link is not (refused, left alone): the rows and events are what
    ``Order.expire_link`` makes, and a second tick does nothing."""
    env = Env(database_url)
    completed_id = env.ready_order()  # CheckoutCompleted: no deadline any more
    created = [create_order() for _ in range(25)]
    for cmd in created:
        assert env.run(cmd).status == "accepted"
    with env.engine.begin() as conn:
        due = conn.execute(
            select(func.max(t.orders.c.link_due_at)).where(t.orders.c.link_due_at.is_not(None))
        ).scalar_one()
        stale = created[-1].order_id  # deadline in the row, link valid for an hour more
        conn.execute(
            t.orders.update()
            .where(t.orders.c.order_id == stale)
            .values(link_expires_at=due + timedelta(hours=1))
        )
    before = env.outbox("event")

    assert release_due(env.sessions, due, 100) == (25, 0)
    assert release_due(env.sessions, due, 100) == (0, 0)

    events = env.outbox("event")[len(before) :]
    assert events == ["link.expired"] * 24
    with env.engine.connect() as conn:
        payloads = [
            json.loads(p)
            for p in conn.execute(
                select(t.outbox.c.payload).where(t.outbox.c.destination.like("%.link.expired"))
            ).scalars()
        ]
    with env.uow() as uow:
        for cmd in created[:-1]:
            order = uow.orders.get(cmd.order_id)
            assert order is not None
            assert order.current_link is not None
            assert (order.link_status.value, order.status, order.link_due_at) == (
                "EXPIRED",
                "EXPIRED",
                None,
            )
            order.check_invariants()
            event = next(p for p in payloads if p["order_id"] == str(cmd.order_id))
            assert event["link_id"] == str(order.current_link.link_id)
            assert event["store_id"] == cmd.store_id
            assert event["command_id"] == str(link_expiry_id(order.current_link.link_id, due))
        refused = uow.orders.get(stale)
        done = uow.orders.get(completed_id)
        assert refused is not None
        assert refused.link_status.value == "CREATED"
        assert done is not None
        assert done.link_status.value == "COMPLETED"
    with env.engine.connect() as conn:
        versions = dict(
            conn.execute(
                select(t.orders.c.order_id, t.orders.c.version).where(
                    t.orders.c.order_id.in_([cmd.order_id for cmd in created])
                )
            ).all()
        )
        released = conn.execute(
            select(t.orders.c.link_expiry_released_at).where(t.orders.c.order_id == stale)
        ).scalar_one()
    assert {versions[cmd.order_id] for cmd in created[:-1]} == {versions[stale] + 1}
    assert released is not None  # tried again after REPUBLISH_AFTER, not every tick


def test_the_migrations_build_exactly_the_tables_the_code_uses(database_url: str) -> None:
    """``alembic upgrade head`` and ``workers/storage/tables.py`` agree: autogenerate
    finds nothing to add, drop or alter (a column added to one and not the other fails)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            diff = compare_metadata(context, t.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_erasing_a_customer_clears_the_stored_contact_and_keeps_the_money(
    database_url: str,
) -> None:
    # Given: a completed order of the customer anna@example.com, part captured
    env = Env(database_url)
    order_id = env.ready_order()
    assert env.run(merchant(c.CapturePayment, order_id, amount=10_000)).status == "accepted"
    erase = c.EraseCustomerData(
        command_id=uuid.uuid4(),
        issued_at=env.clock.now(),
        actor=ADMIN,
        store_id=STORE,
        email="anna@example.com",
    )
    # When
    outcome = env.run(erase)
    # Then: the row holds no contact, the channel and the ledger stay, money still moves
    assert [e.type for e in outcome.events] == ["order.customer_erased"]
    with env.engine.connect() as conn:
        row = conn.execute(select(t.orders).where(t.orders.c.order_id == order_id)).one()
        entries = conn.execute(
            select(func.count())
            .select_from(t.ledger_entries)
            .where(t.ledger_entries.c.order_id == order_id)
        ).scalar()
    assert (row.customer_email, row.customer_phone, row.customer_name) == (None, None, None)
    assert (row.channel, entries) == ("email", 2)
    assert env.run(merchant(c.RefundPayment, order_id, amount=10_000)).status == "accepted"
