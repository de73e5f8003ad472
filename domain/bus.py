"""The one pipeline every command takes: idempotency, the step, its record, rejections.

``run`` is the envelope, in an open unit of work (the caller commits):

- a command id seen before has no second effect: its first outcome's events are
  written to the outbox again (same event ids, so consumers can de-duplicate); the
  same id with a different payload or type is refused (``DUPLICATE_COMMAND_CONFLICT``);
- otherwise the step runs inside ``uow.scope()``; its events and the processed record
  are staged with it;
- a ``DomainError`` discards what the step staged and stages an ``order.rejected``
  event (stable code, human message) and the processed record instead, in the same
  transaction;
- anything else (a ``TransientError``, a crash) propagates: nothing is committed and
  the runtime retries the delivery.

A step is a command handler (``domain.handlers.HANDLERS``). Most give the command's
events at once. Send-link's first step (``domain.delivery.begin_attempt``) gives an
``Attempt`` instead: the attempt is committed, the provider is called outside any
transaction (``deliver``), and the answer is recorded by a second step
(``record_answer``) through the same envelope.

Entry points: ``handle`` (one command, one transaction per step) and ``handle_many``
(a group: one transaction per step for all of it, one by one only when the group's
commit fails). The worker's grouping (``workers.runtime.grouping``) joins concurrent
messages with the same two pieces, ``run_group`` and ``run_alone``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from domain.delivery import Answer, Attempt, deliver, record_answer
from domain.errors import DomainError, DuplicateCommandConflict, TransientError
from domain.handlers import HANDLERS
from domain.outcomes import Cause, Outcome, located, payload_hash, rejection
from domain.ports import Context, ProcessedCommand, UnitOfWork, UowFactory
from messages.common import CommandBase, EventBase

__all__ = [
    "Job",
    "Outcome",
    "handle",
    "handle_many",
    "reject",
    "run",
    "run_alone",
    "run_group",
]

#: What a step gives: the command's events, or an attempt to finish outside the
#: transaction (send-link).
Result = Outcome | Attempt
Step = Callable[[Any, UnitOfWork, Context], Sequence[EventBase] | Attempt]


@dataclass(frozen=True, slots=True)
class Job:
    """One step of one command."""

    command: CommandBase
    step: Step
    #: The provider has already answered: a failed commit is waited out in process
    #: (``ctx.patience``), never left to a redelivery that would send again.
    patient: bool = False

    @classmethod
    def first(cls, command: CommandBase) -> Job:
        return cls(command, HANDLERS[type(command)])

    @classmethod
    def answer(cls, attempt: Attempt, answer: Answer) -> Job:
        return cls(attempt.cmd, partial(record_answer, attempt, answer), patient=True)


def run(job: Job, uow: UnitOfWork, ctx: Context) -> Result:
    """The envelope, in an open unit of work; the caller commits."""
    command = job.command
    digest = payload_hash(command)
    cause = Cause.of(command)
    prior = uow.processed.get(command.command_id)
    if prior is not None:
        return _replay(prior, cause, digest, uow, ctx)
    try:
        with uow.scope():
            result = job.step(command, uow, ctx)
            if isinstance(result, Attempt):
                return result
            # A copy: handlers return the aggregate's own list, which commit drains.
            events = list(result)
            for event in events:
                uow.outbox.add_event(event)
            uow.processed.add(
                ProcessedCommand(
                    cause.command_id, cause.command_type, digest, "accepted", tuple(events)
                )
            )
    except DomainError as error:
        return _stage_rejection(located(cause, command, uow), error, digest, uow, ctx)
    return Outcome(command.command_id, "accepted", events)


def _replay(
    prior: ProcessedCommand, cause: Cause, digest: str, uow: UnitOfWork, ctx: Context
) -> Outcome:
    """A command id seen before: its first outcome again, or a refusal of a changed
    payload (or type: ResendPaymentLink and CancelOrder can carry equal payloads)."""
    if prior.payload_hash != digest or prior.command_type != cause.command_type:
        error = DuplicateCommandConflict(
            f"command id {cause.command_id} was already used for a different "
            f"{prior.command_type} payload"
        )
        conflict = rejection(cause, error, ctx)
        uow.outbox.add_event(conflict)
        return Outcome(cause.command_id, "rejected", [conflict], error.code)
    for event in prior.events:
        uow.outbox.add_event(event)
    return Outcome(cause.command_id, "duplicate", list(prior.events))


def _stage_rejection(
    cause: Cause, error: DomainError, digest: str, uow: UnitOfWork, ctx: Context
) -> Outcome:
    event = rejection(cause, error, ctx)
    uow.outbox.add_event(event)
    uow.processed.add(
        ProcessedCommand(cause.command_id, cause.command_type, digest, "rejected", (event,))
    )
    return Outcome(cause.command_id, "rejected", [event], error.code)


def reject(
    cause: Cause, error: DomainError, digest: str, uow_factory: UowFactory, ctx: Context
) -> Outcome:
    """A command refused before it could run (unparseable, not granted): the rejection
    is recorded like any other, once per command id."""
    with uow_factory() as uow:
        prior = uow.processed.get(cause.command_id)
        if prior is not None:
            outcome = _replay(prior, cause, digest, uow, ctx)
        else:
            outcome = _stage_rejection(cause, error, digest, uow, ctx)
        uow.commit()
        return outcome


def run_alone(job: Job, uow_factory: UowFactory, ctx: Context) -> Result:
    """One step in its own transaction (patiently, if the provider has answered)."""

    def once() -> Result:
        with uow_factory() as uow:
            result = run(job, uow, ctx)
            uow.commit()
            return result

    return ctx.patience.call(once) if job.patient else once()


def run_group(jobs: Sequence[Job], uow_factory: UowFactory, ctx: Context) -> list[Result] | None:
    """Several steps in one transaction: for each, the result ``run_alone`` gives it,
    in fewer round trips (what they read is fetched in one statement per table, what
    they write goes out in one statement per table at commit). None when the group's
    transaction failed: nothing of it is committed, and each job goes alone."""
    try:
        with uow_factory() as uow:
            _prefetch([job.command for job in jobs], uow)
            results = [run(job, uow, ctx) for job in jobs]
            uow.commit()
    except TransientError:
        return None
    return results


def _prefetch(commands: Sequence[CommandBase], uow: UnitOfWork) -> None:
    """Read what the steps will ask for, in bulk: the processed records, the orders
    (locked), the stores they name or belong to, the notification records."""
    order_ids = [oid for cmd in commands if (oid := getattr(cmd, "order_id", None)) is not None]
    uow.prefetch(
        command_ids=[cmd.command_id for cmd in commands],
        order_ids=order_ids,
        lock=True,
        store_ids=[
            sid for cmd in commands if isinstance(sid := getattr(cmd, "store_id", None), str)
        ],
        link_ids=[lid for cmd in commands if (lid := getattr(cmd, "link_id", None)) is not None],
    )
    orders = (uow.orders.get(oid) for oid in order_ids)
    uow.prefetch(store_ids=[order.store_id for order in orders if order is not None])


def settled(result: Result) -> Outcome:
    """The outcome of a command's last step (only send-link's first step is not)."""
    if isinstance(result, Attempt):
        raise TypeError(f"command {result.cmd.command_id} still has an attempt to finish")
    return result


def handle(command: CommandBase, uow_factory: UowFactory, ctx: Context) -> Outcome:
    """One command: its step, and for send-link the provider call and the answer."""
    result = run_alone(Job.first(command), uow_factory, ctx)
    if isinstance(result, Attempt):
        answer = deliver(result, uow_factory, ctx)
        return settled(run_alone(Job.answer(result, answer), uow_factory, ctx))
    return result


def _steps(jobs: Sequence[Job], uow_factory: UowFactory, ctx: Context) -> list[Result]:
    grouped = run_group(jobs, uow_factory, ctx)
    return grouped if grouped is not None else [run_alone(job, uow_factory, ctx) for job in jobs]


def handle_many(
    commands: Sequence[CommandBase], uow_factory: UowFactory, ctx: Context
) -> list[Outcome]:
    """``handle`` for each command, in one transaction per step for the group. In the
    calling thread: a provider failure other than a refusal raises for the whole call
    (the worker's grouping calls each provider in its own message's thread)."""
    results = _steps([Job.first(cmd) for cmd in commands], uow_factory, ctx)
    pending = {i: r for i, r in enumerate(results) if isinstance(r, Attempt)}
    answers = [Job.answer(a, deliver(a, uow_factory, ctx)) for a in pending.values()]
    for i, answered in zip(pending, _steps(answers, uow_factory, ctx), strict=True):
        results[i] = answered
    return [settled(result) for result in results]
