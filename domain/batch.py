"""Several commands of one kind in one transaction: for each, the outcome ``dispatch``
gives it alone, in fewer round trips.

A worker process gathers the CreateOrder and SendPaymentLink commands that arrive
together (``workers.batching``) and hands them here. What they read is fetched in one
statement per table (``UnitOfWork.prefetch``); what they write goes out at commit in
one statement per table. Each message is still acknowledged only after the
transaction holding its change has committed.

The batch covers the common case and leaves the rest to ``dispatch``, one command at a
time, in the message's own thread: a command id seen before (a replay), a rejected
command, a second command for an order already in the batch. If the batch's
transaction fails as a whole, every command in it goes alone. Send-link keeps its
before-and-after recording: the attempts commit together, the provider is called once
per link outside any transaction, and the answers commit together; a provider's
refusal, or a failure to record the answers, continues alone exactly as
``send_payment_link`` would (never by sending again).

``dispatch_batch`` returns one continuation per command: calling it gives the outcome
(already committed, or computed then by the single path) or raises what the single
path raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from domain.delivery import (
    Attempt,
    after_failure,
    begin_attempt,
    deliver,
    record_sent,
    stage_sent,
)
from domain.dispatch import apply_command, dispatch
from domain.errors import DomainError, TransientError
from domain.notifications import DeliveryReceipt
from domain.outcomes import Outcome, UowFactory, payload_hash
from messages import commands as c
from messages.common import CommandBase

if TYPE_CHECKING:
    from domain.handlers import Context

Continuation = Callable[[], Outcome]

#: The command types that run in batches; any other type goes through ``dispatch``.
BATCHED: frozenset[type[CommandBase]] = frozenset({c.CreateOrder, c.SendPaymentLink})


def settled(outcome: Outcome) -> Outcome:
    """The continuation of a command whose outcome is already committed."""
    return outcome


def _distinct(commands: Sequence[Any]) -> list[int]:
    """Indexes of the commands to batch: the first per command id and per order id."""
    seen_commands: set[Any] = set()
    seen_orders: set[Any] = set()
    chosen = []
    for i, cmd in enumerate(commands):
        if cmd.command_id in seen_commands or cmd.order_id in seen_orders:
            continue
        seen_commands.add(cmd.command_id)
        seen_orders.add(cmd.order_id)
        chosen.append(i)
    return chosen


def dispatch_batch(
    commands: Sequence[CommandBase], uow_factory: UowFactory, ctx: Context
) -> list[Continuation]:
    """One continuation per command (same order). All commands must be of one type."""
    alone: list[Continuation] = [partial(dispatch, cmd, uow_factory, ctx) for cmd in commands]
    kinds = {type(cmd) for cmd in commands}
    if len(commands) < 2 or len(kinds) != 1 or not kinds <= BATCHED:
        return alone
    try:
        if kinds == {c.CreateOrder}:
            return _create_orders(list(commands), alone, uow_factory, ctx)  # type: ignore[arg-type]
        return _send_links(list(commands), alone, uow_factory, ctx)  # type: ignore[arg-type]
    except (DomainError, TransientError):
        return alone


def _create_orders(
    cmds: list[c.CreateOrder], conts: list[Continuation], uow_factory: UowFactory, ctx: Context
) -> list[Continuation]:
    chosen = _distinct(cmds)
    done: dict[int, Outcome] = {}
    with uow_factory() as uow:
        uow.prefetch(
            command_ids=[cmds[i].command_id for i in chosen],
            order_ids=[cmds[i].order_id for i in chosen],
            store_ids=[cmds[i].store_id for i in chosen],
        )
        for i in chosen:
            cmd = cmds[i]
            if uow.processed.get(cmd.command_id) is not None:
                continue  # a replay: alone
            try:
                # create_order checks everything before it stages anything, so a
                # rejected command leaves the unit of work as it was.
                done[i] = apply_command(cmd, payload_hash(cmd), uow, ctx)
            except DomainError:
                continue  # rejected: alone records the rejection
        if done:
            uow.commit()
    return [partial(settled, done[i]) if i in done else k for i, k in enumerate(conts)]


def _send_links(
    cmds: list[c.SendPaymentLink],
    conts: list[Continuation],
    uow_factory: UowFactory,
    ctx: Context,
) -> list[Continuation]:
    chosen = _distinct(cmds)
    out = list(conts)
    # 1. record every attempt, in one transaction
    attempts: dict[int, Attempt] = {}
    with uow_factory() as uow:
        uow.prefetch(
            command_ids=[cmds[i].command_id for i in chosen],
            order_ids=[cmds[i].order_id for i in chosen],
            lock=True,
            link_ids=[cmds[i].link_id for i in chosen],
        )
        orders = [uow.orders.get_for_update(cmds[i].order_id) for i in chosen]
        uow.prefetch(store_ids=[o.store_id for o in orders if o is not None])
        for i in chosen:
            cmd = cmds[i]
            if uow.processed.get(cmd.command_id) is not None:
                continue
            try:
                attempts[i] = begin_attempt(cmd, payload_hash(cmd), uow, ctx)
            except DomainError:
                continue
        if not attempts:
            return out
        uow.commit()
    # From here on an attempt is on record: a command never goes back to ``dispatch``.
    # 2. one provider call per link, outside any transaction
    sent: dict[int, tuple[Attempt, DeliveryReceipt]] = {}
    for i, attempt in attempts.items():
        try:
            sent[i] = (attempt, deliver(attempt, ctx))
        except Exception as exc:  # noqa: BLE001 - continued alone, as send_payment_link does
            out[i] = partial(after_failure, attempt, exc, uow_factory, ctx)
    # 3. record every answer, in one transaction; if that fails, each alone (patiently)
    for i, (attempt, receipt) in sent.items():
        out[i] = partial(record_sent, attempt, receipt, uow_factory, ctx)
    if not sent:
        return out
    try:
        outcomes: dict[int, Outcome] = {}
        with uow_factory() as uow:
            uow.prefetch(
                command_ids=[a.cmd.command_id for a, _ in sent.values()],
                order_ids=[a.cmd.order_id for a, _ in sent.values()],
                lock=True,
            )
            for i, (attempt, receipt) in sent.items():
                outcomes[i] = stage_sent(attempt, receipt, uow, ctx)
            uow.commit()
    except (DomainError, TransientError):
        return out
    for i, outcome in outcomes.items():
        out[i] = partial(settled, outcome)
    return out
