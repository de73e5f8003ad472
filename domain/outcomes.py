"""What a command led to, and the rejection event that says why it was refused
(the envelope that produces them is ``domain.bus``)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from uuid import UUID

from domain.errors import DomainError
from domain.links import hash_token
from domain.ports import Context, UnitOfWork
from messages import events as ev
from messages.common import CommandBase, EventBase


@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: UUID
    #: "accepted", "rejected" or "duplicate"
    status: str
    events: list[EventBase] = field(default_factory=list)
    code: str | None = None


def payload_hash(command: CommandBase) -> str:
    """What a command asks for, without when it was issued: an upstream that re-sends
    a command with a fresh ``issued_at`` is repeating itself, not changing its mind."""
    content = command.model_dump(mode="json", exclude={"issued_at"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Cause:
    """The identity of a command, even one too malformed to parse fully."""

    command_id: UUID
    command_type: str
    order_id: UUID | None = None
    store_id: str | None = None

    @classmethod
    def of(cls, command: CommandBase) -> Cause:
        order_id = getattr(command, "order_id", None)
        store_id = getattr(command, "store_id", None)
        return cls(
            command.command_id,
            type(command).__name__,
            order_id if isinstance(order_id, UUID) else None,
            store_id if isinstance(store_id, str) else None,
        )


def located(cause: Cause, command: CommandBase, uow: UnitOfWork) -> Cause:
    """``cause`` with the order and store paylink knows for it: the order a checkout
    command's token names, and the order's store unless the command's actor does not
    hold it (a stranger learns nothing: "not yours" and "not there" look alike)."""
    order = None
    if cause.order_id is not None:
        order = uow.orders.get(cause.order_id)
    elif isinstance(token := getattr(command, "token", None), str):
        order = uow.orders.get_by_token_for_update(hash_token(token))
    actor_stores = list(getattr(getattr(command, "actor", None), "store_ids", None) or [])
    store_id = cause.store_id
    if order is not None and (not actor_stores or order.store_id in actor_stores):
        store_id = store_id or order.store_id
    # Otherwise the actor's own store: events are routed by store, and the upstream that
    # sent the command must hear the answer (an unknown order, another store's order).
    store_id = store_id or (actor_stores[0] if actor_stores else None)
    return replace(
        cause,
        order_id=order.order_id if order is not None else cause.order_id,
        store_id=store_id,
    )


def rejection(cause: Cause, error: DomainError, ctx: Context) -> ev.OrderRejected:
    return ev.OrderRejected(
        event_id=uuid.uuid4(),
        occurred_at=ctx.clock.now(),
        command_id=cause.command_id,
        order_id=cause.order_id,
        store_id=cause.store_id,
        command_type=cause.command_type,
        code=error.code,
        message=error.message,
    )
