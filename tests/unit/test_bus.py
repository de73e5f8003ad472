"""The command envelope (``domain.bus``): a group gives each command what it gets alone."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.bus import Job, handle, handle_many, run_group
from domain.errors import TransientError
from domain.ports import Context, UnitOfWork
from messages import commands as c
from messages.common import CommandBase, EventBase
from tests.fakes import Database, FakeUnitOfWork, make_context
from tests.unit.builders import OTHER_STORE_ID, actor, build

#: One store configuration, the same command for every database of a test.
CONFIGURE = build(c.ConfigureStore)


def _store(db: Database, ctx: Context) -> None:
    assert handle(CONFIGURE, lambda: FakeUnitOfWork(db), ctx).status == "accepted"


def _creates(kinds: list[str]) -> list[CommandBase]:
    """CreateOrders: fresh, a repeat of an earlier command (same id and payload), the
    same id with another payload, another store's, or a second one for an earlier order."""
    out: list[CommandBase] = []
    for kind in kinds:
        fresh = build(c.CreateOrder, order_id=str(uuid.uuid4()))
        if kind == "repeat" and out:
            out.append(out[-1])
        elif kind == "conflict" and out:
            out.append(fresh.model_copy(update={"command_id": out[-1].command_id}))
        elif kind == "stranger":
            out.append(build(c.CreateOrder, actor=actor(stores=[OTHER_STORE_ID])))
        elif kind == "same-order" and out:
            out.append(build(c.CreateOrder, order_id=str(out[-1].order_id)))
        else:
            out.append(fresh)
    return out


def _state(db: Database) -> tuple[Any, ...]:
    """What a run left behind, without the ids and times that differ between runs."""
    orders = sorted((o.order_id, o.link_status, o.order_amount) for o in db.orders.values())
    processed = sorted((p.command_id, p.outcome) for p in db.processed.values())
    return orders, processed, sorted(_kind(e) for e in db.events), len(db.commands)


def _kind(event: EventBase) -> tuple[str, str]:
    return event.type, str(getattr(event, "code", ""))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["fresh", "repeat", "conflict", "stranger", "same-order"]),
        min_size=1,
        max_size=8,
    )
)
def test_a_group_gives_the_outcomes_and_state_of_one_by_one(kinds: list[str]) -> None:
    # Given the same commands for two identical stores
    commands = _creates(kinds)
    alone_db, group_db = Database(), Database()
    ctx = make_context()
    _store(alone_db, ctx)
    _store(group_db, ctx)
    # When one store gets them one at a time and the other as a group
    alone = [handle(cmd, lambda: FakeUnitOfWork(alone_db), ctx) for cmd in commands]
    grouped = handle_many(commands, lambda: FakeUnitOfWork(group_db), ctx)
    # Then every command has the same outcome, and the databases say the same
    assert [(o.status, o.code) for o in grouped] == [(o.status, o.code) for o in alone]
    assert _state(group_db) == _state(alone_db)


def test_a_rejected_command_in_a_group_is_recorded_in_the_groups_transaction() -> None:
    # Given a store and three CreateOrders, the middle one for a store the actor lacks
    db, ctx = Database(), make_context()
    _store(db, ctx)
    commits = db.commits
    stranger = build(c.CreateOrder, actor=actor(stores=[OTHER_STORE_ID]))
    commands = [build(c.CreateOrder), stranger, build(c.CreateOrder, order_id=str(uuid.uuid4()))]
    # When they run as one group
    results = run_group([Job.first(cmd) for cmd in commands], lambda: FakeUnitOfWork(db), ctx)
    # Then one transaction holds two orders and the rejection, with its processed record
    assert results is not None
    assert [getattr(r, "code", None) for r in results] == [None, "STORE_ACCESS_DENIED", None]
    assert db.commits == commits + 1
    assert len(db.orders) == 2
    assert db.processed[stranger.command_id].outcome == "rejected"
    assert [e.type for e in db.events].count("order.rejected") == 1


class BrokenCommit(FakeUnitOfWork):
    """A database that refuses every commit."""

    def commit(self) -> None:
        raise TransientError("connection reset")


def test_a_group_whose_transaction_fails_leaves_nothing_and_says_so() -> None:
    # Given a group whose commit fails
    db, ctx = Database(), make_context()
    _store(db, ctx)
    before = (len(db.orders), len(db.processed), len(db.events), db.commits)
    commands = [build(c.CreateOrder, order_id=str(uuid.uuid4())) for _ in range(3)]
    # When it runs
    results = run_group([Job.first(cmd) for cmd in commands], lambda: BrokenCommit(db), ctx)
    # Then nothing of it is stored, and the caller learns that each must go alone
    assert results is None
    assert (len(db.orders), len(db.processed), len(db.events), db.commits) == before


def test_a_step_that_fails_midway_leaves_none_of_its_writes_in_the_group() -> None:
    # Given a step that stages an event and then refuses (a DomainError)
    db, ctx = Database(), make_context()
    _store(db, ctx)
    refusing = build(c.CreateOrder, actor=actor(stores=[OTHER_STORE_ID]))

    def stages_then_refuses(cmd: CommandBase, uow: UnitOfWork, context: Context) -> Any:
        uow.outbox.add_command(build(c.CreateOrder))
        return Job.first(cmd).step(cmd, uow, context)

    jobs = [Job(refusing, stages_then_refuses), Job.first(build(c.CreateOrder))]
    # When the group runs
    results = run_group(jobs, lambda: FakeUnitOfWork(db), ctx)
    # Then the refused step's staged command is gone; the other command's remain
    assert results is not None
    assert getattr(results[0], "code", None) == "STORE_ACCESS_DENIED"
    assert [type(cmd).__name__ for cmd in db.commands] == ["SendPaymentLink"]
