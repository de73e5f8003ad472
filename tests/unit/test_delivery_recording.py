"""Recording the provider's answer survives a database hiccup without sending twice."""

from __future__ import annotations

import dataclasses

import pytest

from domain.bus import handle
from domain.errors import TransientError
from domain.ports import Context
from messages import commands as c
from tests.fakes import Database, FakeUnitOfWork, RecordingNotifier, make_context
from tests.unit.builders import build
from workers.runtime.patience import Backoff


class StepClock:
    """Monotonic time that moves only when the policy sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _patient(notifier: RecordingNotifier, limit: float, clock: StepClock) -> Context:
    patience = Backoff(limit=limit, clock=clock, sleep=clock.sleep)
    return dataclasses.replace(make_context(notifier=notifier), patience=patience)


class FlakyCommits(FakeUnitOfWork):
    """Fails the commit number ``fail_on`` (counted across units of work) once."""

    commits = 0
    fail_on = 0

    def commit(self) -> None:
        FlakyCommits.commits += 1
        if FlakyCommits.commits == FlakyCommits.fail_on:
            self.rollback()
            raise TransientError("database restarting")
        super().commit()


def _send_link(db: Database, notifier: RecordingNotifier) -> c.SendPaymentLink:
    ctx = make_context(notifier=notifier)
    assert handle(build(c.ConfigureStore), lambda: FakeUnitOfWork(db), ctx).status == "accepted"
    assert handle(build(c.CreateOrder), lambda: FakeUnitOfWork(db), ctx).status == "accepted"
    return next(cmd for cmd in db.commands if isinstance(cmd, c.SendPaymentLink))


def test_a_failed_commit_after_the_provider_accepted_is_retried_in_process() -> None:
    # Given the commit that records SENT fails once (the second commit of send-link)
    db, notifier, clock = Database(), RecordingNotifier(), StepClock()
    send = _send_link(db, notifier)
    FlakyCommits.commits, FlakyCommits.fail_on = 0, 2
    # When the link is sent
    outcome = handle(send, lambda: FlakyCommits(db), _patient(notifier, 40.0, clock))
    # Then the customer got one message and the outcome is recorded once
    assert outcome.status == "accepted"
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(notifier.sent) == 1
    record = db.notifications[send.link_id]
    assert (record.state.value, record.attempts, record.uncertain_attempts) == ("sent", 1, 0)
    assert clock.slept == [0.2]  # waited once, in process


def test_recording_gives_up_after_its_patience_and_lets_the_runtime_retry() -> None:
    # Given the database stays down longer than the patience (every later commit fails)
    db, notifier, clock = Database(), RecordingNotifier(), StepClock()
    send = _send_link(db, notifier)
    FlakyCommits.commits, FlakyCommits.fail_on = 0, 2

    class DatabaseDown(FlakyCommits):
        def commit(self) -> None:
            FlakyCommits.commits += 1
            if FlakyCommits.commits >= 2:
                self.rollback()
                raise TransientError("database down")
            FakeUnitOfWork.commit(self)

    # When the link is sent, Then the transient error reaches the runtime (redelivery)
    with pytest.raises(TransientError):
        handle(send, lambda: DatabaseDown(db), _patient(notifier, 3.0, clock))
    assert len(notifier.sent) == 1
    assert clock.slept == [0.2, 0.4, 0.8, 1.6]  # doubling, stopped before 3 s would pass
