"""Outcomes of a command, replays of duplicates, and recorded rejections."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from domain.errors import DomainError, DuplicateCommandConflict
from domain.ports import ProcessedCommand, UnitOfWork
from messages import events as ev
from messages.common import CommandBase, EventBase

if TYPE_CHECKING:
    from domain.handlers import Context

UowFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: UUID
    #: "accepted", "rejected" or "duplicate"
    status: str
    events: list[EventBase] = field(default_factory=list)
    code: str | None = None


def payload_hash(command: CommandBase) -> str:
    canonical = json.dumps(command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _order_id_of(command: CommandBase) -> UUID | None:
    value = getattr(command, "order_id", None)
    return value if isinstance(value, UUID) else None


def rejection(
    command_id: UUID,
    command_type: str,
    error: DomainError,
    ctx: Context,
    *,
    order_id: UUID | None = None,
    store_id: str | None = None,
) -> ev.OrderRejected:
    return ev.OrderRejected(
        event_id=uuid.uuid4(),
        occurred_at=ctx.clock.now(),
        command_id=command_id,
        order_id=order_id,
        store_id=store_id,
        command_type=command_type,
        code=error.code,
        message=error.message,
    )


def replay(
    prior: ProcessedCommand, command: CommandBase, digest: str, uow: UnitOfWork, ctx: Context
) -> Outcome:
    if prior.payload_hash != digest:
        error = DuplicateCommandConflict(
            f"command id {command.command_id} was already used for a different "
            f"{prior.command_type} payload"
        )
        conflict = rejection(
            command.command_id, type(command).__name__, error, ctx, order_id=_order_id_of(command)
        )
        uow.outbox.add_event(conflict)
        uow.commit()
        return Outcome(command.command_id, "rejected", [conflict], error.code)
    for event in prior.events:
        uow.outbox.add_event(event)
    uow.commit()
    return Outcome(command.command_id, "duplicate", list(prior.events))


def record_rejection(
    command: CommandBase, error: DomainError, uow_factory: UowFactory, ctx: Context, digest: str
) -> Outcome:
    with uow_factory() as uow:
        prior = uow.processed.get(command.command_id)
        if prior is not None:
            return replay(prior, command, digest, uow, ctx)
        store_id = getattr(command, "store_id", None)
        event = rejection(
            command.command_id,
            type(command).__name__,
            error,
            ctx,
            order_id=_order_id_of(command),
            store_id=store_id if isinstance(store_id, str) else None,
        )
        uow.outbox.add_event(event)
        uow.processed.add(
            ProcessedCommand(
                command.command_id, type(command).__name__, digest, "rejected", (event,)
            )
        )
        uow.commit()
        return Outcome(command.command_id, "rejected", [event], error.code)
