"""Grouped CreateOrder and SendPaymentLink on the SQL unit of work (SQLite, PostgreSQL):
the same outcomes and rows as one command at a time, in fewer statements."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, func, select

from domain.bus import Job, handle, handle_many, run_alone, run_group
from domain.delivery import Attempt, deliver
from domain.errors import DeliveryRejected, TransientError
from messages import commands as c
from tests.integration.test_storage import Env
from workers.devtools.commands import ADMIN, configure_store, create_order, merchant
from workers.runtime import grouping
from workers.runtime.grouping import Batcher
from workers.storage import tables as t
from workers.storage.uow import SqlUnitOfWork

pytestmark = pytest.mark.integration


class Counting(Env):
    """An ``Env`` that counts the SQL statements it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.statements = 0
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.statements += 1

    def sends(self) -> list[c.SendPaymentLink]:
        return [
            c.SendPaymentLink.model_validate(cmd["args"][0])
            for cmd in self._commands()
            if cmd["actor_name"] == "send_payment_link"
        ]

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def _outcomes(results: list[Any] | None) -> list[tuple[str, str | None]]:
    assert results is not None, "the group did not commit"
    return [(o.status, o.code) for o in results]


def _attempts(results: list[Any] | None) -> list[Attempt]:
    assert results is not None, "the group did not commit"
    assert all(isinstance(r, Attempt) for r in results), results
    return list(results)


def test_a_batch_of_creates_matches_one_at_a_time(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    valid = [create_order() for _ in range(5)]
    replayed = valid[0]
    assert env.run(replayed).status == "accepted"
    stranger = create_order(actor={**ADMIN, "store_ids": ["another-store"]})
    same_order = create_order(order_id=valid[1].order_id)
    conflict = create_order(merchant_reference1="OTHER").model_copy(
        update={"command_id": valid[2].command_id}
    )
    sends_before = len(env.sends())

    batch = [*valid, stranger, same_order, conflict]
    out = _outcomes(handle_many(batch, env.uow, env.ctx))

    assert out == [
        ("duplicate", None),
        ("accepted", None),
        ("accepted", None),
        ("accepted", None),
        ("accepted", None),
        ("rejected", "STORE_ACCESS_DENIED"),
        ("rejected", "ORDER_ALREADY_EXISTS"),
        ("rejected", "DUPLICATE_COMMAND_CONFLICT"),
    ]
    assert env.count(t.orders) == 5
    assert env.count(t.processed_commands, t.processed_commands.c.outcome == "accepted") == 6
    assert env.count(t.processed_commands, t.processed_commands.c.outcome == "rejected") == 2
    assert len(env.sends()) == sends_before + 4
    assert env.outbox("event").count("order.created") == 6  # 5 orders, 1 replayed


def test_a_batch_of_creates_takes_far_fewer_statements(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    before = env.statements
    for _ in range(8):
        assert env.run(create_order()).status == "accepted"
    alone = env.statements - before
    before = env.statements
    assert {
        o for o, _ in _outcomes(handle_many([create_order() for _ in range(8)], env.uow, env.ctx))
    } == {"accepted"}
    batched = env.statements - before
    assert batched * 3 <= alone, (batched, alone)


def test_a_batch_of_sends_sends_each_link_once(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    orders = [create_order() for _ in range(4)]
    for cmd in orders:
        assert env.run(cmd).status == "accepted"
    first = env.sends()
    assert env.run(first[0]).status == "accepted"  # already sent: a replay in the batch
    resent = orders[3].order_id
    assert env.run(merchant(c.ResendPaymentLink, resent)).status == "accepted"
    superseded, fresh = first[3], env.sends()[-1]
    sent_before = len(env.notifier.sent)

    out = _outcomes(handle_many([*first[:3], superseded, fresh], env.uow, env.ctx))

    assert out == [
        ("duplicate", None),
        ("accepted", None),
        ("accepted", None),
        ("rejected", "LINK_SUPERSEDED"),
        ("accepted", None),
    ]
    assert len(env.notifier.sent) - sent_before == 3
    n = t.notifications.c
    assert env.count(t.notifications, n.state == "sent", n.attempts == 1) == 4
    assert env.count(t.notifications) == 4  # the superseded link was never attempted
    assert env.count(t.notifications, n.uncertain_attempts > 0) == 0
    assert env.outbox("event").count("link.sent") == 5  # 4 links, 1 replayed


def test_a_refused_link_in_a_batch_is_recorded_like_alone(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    for _ in range(3):
        assert env.run(create_order()).status == "accepted"
    sends = env.sends()
    refused = sends[1].link_id
    real_send = env.notifier.send

    def send(notification: Any) -> Any:
        if notification.notification_id == refused:
            raise DeliveryRejected("recipient blocked", provider="recording")
        return real_send(notification)

    env.notifier.send = send  # type: ignore[method-assign]
    out = _outcomes(handle_many(sends, env.uow, env.ctx))
    assert out == [("accepted", None)] * 3
    assert env.outbox("event").count("link.delivery_failed") == 1
    assert env.outbox("event").count("link.sent") == 2


def test_answers_and_the_next_attempts_commit_in_one_transaction(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    for _ in range(4):
        assert env.run(create_order()).status == "accepted"
    sends = env.sends()
    first = _attempts(run_group([Job.first(s) for s in sends[:2]], env.uow, env.ctx))
    answers = [Job.answer(a, deliver(a, env.uow, env.ctx)) for a in first]
    commits: list[int] = []

    class Counted(SqlUnitOfWork):
        def commit(self) -> None:
            commits.append(1)
            super().commit()

    # A command whose answer is earlier in the same group (here its own redelivery)
    # sees that answer: it is a replay, as it would be one transaction later.
    redelivered = sends[0]
    counted = lambda: Counted(env.sessions, now=env.clock.now)  # noqa: E731
    jobs = [*answers, *(Job.first(s) for s in [*sends[2:], redelivered])]

    results = run_group(jobs, counted, env.ctx)

    assert len(commits) == 1  # two answers, two attempts and a replay: one transaction
    assert results is not None
    assert _outcomes(results[:2]) == [("accepted", None)] * 2
    assert [isinstance(r, Attempt) for r in results[2:]] == [True, True, False]
    assert _outcomes(results[4:]) == [("duplicate", None)]
    n = t.notifications.c
    assert env.count(t.notifications, n.state == "sent") == 2
    assert env.count(t.notifications, n.state == "attempting") == 2
    rest = [Job.answer(a, deliver(a, env.uow, env.ctx)) for a in _attempts(results[2:4])]
    assert _outcomes(run_group(rest, env.uow, env.ctx)) == [("accepted", None)] * 2
    assert len(env.notifier.sent) == 4
    assert len({x.notification_id for x in env.notifier.sent}) == 4
    assert env.count(t.notifications, n.state == "sent", n.attempts == 1) == 4
    assert env.count(t.notifications, n.uncertain_attempts > 0) == 0


def test_a_failed_combined_commit_sends_nothing_twice(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    for _ in range(4):
        assert env.run(create_order()).status == "accepted"
    sends = env.sends()
    first = _attempts(run_group([Job.first(s) for s in sends[:2]], env.uow, env.ctx))
    answers = [Job.answer(a, deliver(a, env.uow, env.ctx)) for a in first]
    failing = lambda: FailingCommit(env.sessions, now=env.clock.now)  # noqa: E731

    assert run_group([*answers, *(Job.first(s) for s in sends[2:])], failing, env.ctx) is None

    # Nothing committed: each answer is recorded alone, and each command goes alone
    # (attempt, send, answer); every link reaches the provider exactly once.
    assert (
        _outcomes([run_alone(job, failing, env.ctx) for job in answers]) == [("accepted", None)] * 2
    )
    assert _outcomes([handle(s, failing, env.ctx) for s in sends[2:]]) == [("accepted", None)] * 2
    assert len(env.notifier.sent) == 4
    n = t.notifications.c
    assert env.count(t.notifications, n.state == "sent", n.attempts == 1) == 4


def test_a_rejected_command_in_a_group_costs_no_extra_transaction(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    commits: list[int] = []

    class Counted(SqlUnitOfWork):
        def commit(self) -> None:
            commits.append(1)
            super().commit()

    counted = lambda: Counted(env.sessions, now=env.clock.now)  # noqa: E731
    stranger = create_order(actor={**ADMIN, "store_ids": ["another-store"]})
    creates = [create_order(), stranger, create_order()]

    out = _outcomes(run_group([Job.first(cmd) for cmd in creates], counted, env.ctx))

    assert out == [("accepted", None), ("rejected", "STORE_ACCESS_DENIED"), ("accepted", None)]
    assert len(commits) == 1
    assert env.count(t.orders) == 2
    assert env.outbox("event").count("order.rejected") == 1


class FailingCommit(SqlUnitOfWork):
    """Fails every commit whose unit of work staged more than one processed record."""

    def commit(self) -> None:
        if len(self.processed.rows) > 1:
            self.rollback()
            raise TransientError("database restarting")
        super().commit()


@pytest.mark.parametrize("step", ["create", "answer"])
def test_a_failed_batch_commit_goes_on_one_by_one_without_sending_twice(
    database_url: str,
    step: str,
) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    failing = lambda: FailingCommit(env.sessions, now=env.clock.now)  # noqa: E731
    creates = [create_order() for _ in range(4)]
    if step == "create":
        assert _outcomes(handle_many(creates, failing, env.ctx)) == [("accepted", None)] * 4
        assert env.count(t.orders) == 4
        return
    for cmd in creates:
        assert env.run(cmd).status == "accepted"
    # The attempts commit (no processed record); the answers' commit fails; each is
    # then recorded alone, with no second provider call.
    assert _outcomes(handle_many(env.sends(), failing, env.ctx)) == [("accepted", None)] * 4
    assert len(env.notifier.sent) == 4
    n = t.notifications.c
    assert env.count(t.notifications, n.state == "sent", n.attempts == 1) == 4


def test_worker_threads_group_their_commands(database_url: str) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    batcher = Batcher(env.uow, env.ctx, max_size=8)
    created = _in_threads(batcher, [create_order() for _ in range(48)])
    assert [getattr(r, "status", r) for r in created] == ["accepted"] * 48
    sends = env.sends()
    assert len(sends) == 48
    sent = _in_threads(batcher, list(sends))
    assert [getattr(r, "status", r) for r in sent] == ["accepted"] * 48

    assert batcher.groups > 0
    assert len(env.notifier.sent) == 48
    assert len({n.notification_id for n in env.notifier.sent}) == 48
    assert env.outbox("event").count("link.sent") == 48


def _in_threads(batcher: Batcher, commands: list[c.CommandBase], n: int = 8) -> list[Any]:
    """Dispatch ``commands`` from ``n`` threads at once; each result or exception."""
    results: list[Any] = [None] * len(commands)
    start = threading.Barrier(n)

    def work(k: int) -> None:
        start.wait()
        for i in range(k, len(commands), n):
            results[i] = _catch(batcher.dispatch, commands[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return results


def test_a_group_whose_step_fails_goes_on_one_by_one(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    calls: list[int] = []

    def broken(jobs: Any, *_: Any) -> Any:
        calls.append(len(jobs))
        raise RuntimeError("a bug in the grouped step")

    monkeypatch.setattr("workers.runtime.grouping.run_group", broken)
    batcher = Batcher(env.uow, env.ctx, max_size=8)
    results = _in_threads(batcher, [create_order() for _ in range(32)])

    assert calls  # the step ran (and failed) ...
    assert [r.status for r in results] == ["accepted"] * 32  # ... yet every command landed
    assert env.count(t.orders) == 32


class Interrupted(BaseException):
    """Like Dramatiq's time limit: raised in the leader's thread, not an Exception."""


def test_an_interrupted_leader_raises_and_its_group_goes_on_alone(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"
    gate = threading.Event()
    real = grouping.run_alone

    def slow(job: Any, *args: Any) -> Any:
        gate.wait(5)  # hold the first (single) command so that the others form one group
        return real(job, *args)

    def interrupted(jobs: Any, *_: Any) -> Any:
        raise Interrupted

    monkeypatch.setattr("workers.runtime.grouping.run_alone", slow)
    monkeypatch.setattr("workers.runtime.grouping.run_group", interrupted)
    batcher = Batcher(env.uow, env.ctx, max_size=8)
    first = threading.Thread(target=batcher.dispatch, args=(create_order(),))
    first.start()
    while "create-order" not in batcher._running:
        threading.Event().wait(0.01)
    others = [create_order() for _ in range(4)]
    out: list[Any] = []
    waiters = [
        threading.Thread(target=lambda cmd=cmd: out.append(_catch(batcher.dispatch, cmd)))
        for cmd in others
    ]
    for th in waiters:
        th.start()
    threading.Event().wait(0.3)  # they join one group behind the running one
    gate.set()
    first.join(10)
    for th in waiters:
        th.join(10)

    interrupted = [r for r in out if isinstance(r, Interrupted)]
    assert len(interrupted) == 1  # the leader of the group
    assert sorted(r.status for r in out if not isinstance(r, Interrupted)) == ["accepted"] * 3
    assert env.count(t.orders) == 1 + 3


def _catch(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except BaseException as exc:
        return exc


def test_batch_size_one_turns_grouping_off(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = Counting(database_url)
    assert env.run(configure_store()).status == "accepted"

    grouped: list[int] = []
    real = grouping.run_group

    def counted(jobs: Any, *args: Any) -> Any:
        grouped.append(len(jobs))
        return real(jobs, *args)

    monkeypatch.setattr("workers.runtime.grouping.run_group", counted)
    batcher = Batcher(env.uow, env.ctx, max_size=1)
    results = _in_threads(batcher, [create_order() for _ in range(16)])
    assert [r.status for r in results] == ["accepted"] * 16
    assert env.count(t.orders) == 16
    assert grouped == []  # every command went alone, none through a group
