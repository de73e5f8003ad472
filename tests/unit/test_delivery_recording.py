"""Recording the provider's answer survives a database hiccup without sending twice."""

from __future__ import annotations

import pytest

from domain import delivery
from domain.dispatch import dispatch
from domain.errors import TransientError
from messages import commands as c
from tests.fakes import Database, FakeUnitOfWork, RecordingNotifier, make_context
from tests.unit.builders import build


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
    assert dispatch(build(c.ConfigureStore), lambda: FakeUnitOfWork(db), ctx).status == "accepted"
    assert dispatch(build(c.CreateOrder), lambda: FakeUnitOfWork(db), ctx).status == "accepted"
    return next(cmd for cmd in db.commands if isinstance(cmd, c.SendPaymentLink))


def test_a_failed_commit_after_the_provider_accepted_is_retried_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the commit that records SENT fails once (the second commit of send-link)
    monkeypatch.setattr(delivery.time, "sleep", lambda _s: None)
    db, notifier = Database(), RecordingNotifier()
    send = _send_link(db, notifier)
    FlakyCommits.commits, FlakyCommits.fail_on = 0, 2
    # When the link is sent
    outcome = dispatch(send, lambda: FlakyCommits(db), make_context(notifier=notifier))
    # Then the customer got one message and the outcome is recorded once
    assert outcome.status == "accepted"
    assert [e.type for e in outcome.events] == ["link.sent"]
    assert len(notifier.sent) == 1
    record = db.notifications[send.link_id]
    assert (record.state.value, record.attempts, record.uncertain_attempts) == ("sent", 1, 0)


def test_recording_gives_up_after_its_patience_and_lets_the_runtime_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the database stays down longer than the patience
    monkeypatch.setattr(delivery, "RECORD_PATIENCE_SECONDS", 0.0)
    db, notifier = Database(), RecordingNotifier()
    send = _send_link(db, notifier)
    FlakyCommits.commits, FlakyCommits.fail_on = 0, 2
    # When the link is sent, Then the transient error reaches the runtime (redelivery)
    with pytest.raises(TransientError):
        dispatch(send, lambda: FlakyCommits(db), make_context(notifier=notifier))
    assert len(notifier.sent) == 1
