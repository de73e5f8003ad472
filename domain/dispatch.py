"""One entry point for every command: idempotency, transaction, rejection.

- A command id seen before has no second effect: its first outcome's events are
  written to the outbox again (same event ids, so consumers can de-duplicate).
- The same id with a different payload is refused with ``DUPLICATE_COMMAND_CONFLICT``.
- A ``DomainError`` rolls the change back and commits an ``order.rejected`` event
  instead, with the command id, a stable code and a human message.
- Anything else (a ``TransientError``, a crash) propagates: nothing was committed,
  and the runtime retries the delivery.
"""

from __future__ import annotations

from domain.delivery import send_payment_link
from domain.errors import DomainError
from domain.handlers import HANDLERS, Events
from domain.outcomes import Cause, Outcome, UowFactory, payload_hash, record_rejection, replay
from domain.ports import Context, ProcessedCommand, UnitOfWork
from messages import commands as c
from messages.common import CommandBase

__all__ = ["Outcome", "UowFactory", "apply_command", "dispatch", "payload_hash"]


def dispatch(command: CommandBase, uow_factory: UowFactory, ctx: Context) -> Outcome:
    digest = payload_hash(command)
    if isinstance(command, c.SendPaymentLink):
        return send_payment_link(command, digest, uow_factory, ctx)
    try:
        with uow_factory() as uow:
            prior = uow.processed.get(command.command_id)
            if prior is not None:
                return replay(prior, Cause.of(command), digest, uow, ctx)
            outcome = apply_command(command, digest, uow, ctx)
            uow.commit()
            return outcome
    except DomainError as error:
        return record_rejection(Cause.of(command), error, uow_factory, ctx, digest, command)


def apply_command(command: CommandBase, digest: str, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Run the handler in an open unit of work and stage its events and processed
    record; the caller commits. A ``DomainError`` propagates."""
    # A copy: handlers return the aggregate's own list, which commit drains.
    events: Events = list(HANDLERS[type(command)](command, uow, ctx))
    for event in events:
        uow.outbox.add_event(event)
    uow.processed.add(
        ProcessedCommand(
            command.command_id, type(command).__name__, digest, "accepted", tuple(events)
        )
    )
    return Outcome(command.command_id, "accepted", events)
