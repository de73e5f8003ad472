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
from typing import Any, TypeVar

from domain.delivery import (
    Attempt,
    begin_attempt,
    deliver,
    record_sent,
    stage_sent,
)
from domain.dispatch import apply_command, dispatch
from domain.errors import DomainError, TransientError
from domain.notifications import DeliveryReceipt
from domain.outcomes import Outcome, UowFactory, payload_hash
from domain.ports import Context, UnitOfWork
from messages import commands as c
from messages.common import CommandBase

Continuation = Callable[[], Outcome]
C = TypeVar("C", c.CreateOrder, c.SendPaymentLink)
T = TypeVar("T")

#: The command types that run in batches; any other type goes through ``dispatch``.
BATCHED: frozenset[type[CommandBase]] = frozenset({c.CreateOrder, c.SendPaymentLink})


def settled(outcome: Outcome) -> Outcome:
    """The continuation of a command whose outcome is already committed."""
    return outcome


def _distinct(commands: Sequence[Any], taken: Sequence[Any] = ()) -> list[int]:
    """Indexes of the commands to batch: the first per command id and per order id,
    and none for an order in ``taken`` (already in the batch)."""
    seen_commands: set[Any] = set()
    seen_orders: set[Any] = set(taken)
    chosen = []
    for i, cmd in enumerate(commands):
        if cmd.command_id in seen_commands or cmd.order_id in seen_orders:
            continue
        seen_commands.add(cmd.command_id)
        seen_orders.add(cmd.order_id)
        chosen.append(i)
    return chosen


def _apply_fresh(
    cmds: Sequence[C],
    chosen: list[int],
    step: Callable[[C, str, UnitOfWork, Context], T],
    uow: UnitOfWork,
    ctx: Context,
) -> dict[int, T]:
    """``step`` for each chosen command not seen before (the caller commits). A replay
    or a rejected command is left out: it goes alone, which replays it or records the
    rejection (``step`` must raise before it stages anything)."""
    done: dict[int, T] = {}
    for i in chosen:
        cmd = cmds[i]
        if uow.processed.get(cmd.command_id) is not None:
            continue
        try:
            done[i] = step(cmd, payload_hash(cmd), uow, ctx)
        except DomainError:
            continue
    return done


def alone(command: CommandBase, uow_factory: UowFactory, ctx: Context) -> Continuation:
    """The continuation that runs a command by itself (``dispatch``)."""
    return partial(dispatch, command, uow_factory, ctx)


def create_orders(
    cmds: Sequence[c.CreateOrder], uow_factory: UowFactory, ctx: Context
) -> list[Continuation]:
    """Several CreateOrders in one transaction."""
    conts = [alone(cmd, uow_factory, ctx) for cmd in cmds]
    chosen = _distinct(cmds)
    try:
        with uow_factory() as uow:
            uow.prefetch(
                command_ids=[cmds[i].command_id for i in chosen],
                order_ids=[cmds[i].order_id for i in chosen],
                store_ids=[cmds[i].store_id for i in chosen],
            )
            # create_order checks everything before it stages anything, so a rejected
            # command leaves the unit of work as it was.
            done = _apply_fresh(cmds, chosen, apply_command, uow, ctx)
            if done:
                uow.commit()
    except TransientError:
        return conts
    return [partial(settled, done[i]) if i in done else k for i, k in enumerate(conts)]


Answer = tuple[Attempt, DeliveryReceipt]


def record_send_steps(
    cmds: Sequence[c.SendPaymentLink],
    answers: Sequence[Answer],
    uow_factory: UowFactory,
    ctx: Context,
) -> tuple[list[Attempt | Continuation], list[Continuation]]:
    """Send-link's two recording steps for several links, in one transaction: step 3
    (``SENT``) for the ``answers`` whose provider accepted, and step 1 (``ATTEMPTING``)
    for ``cmds``, whose provider is called after the commit.

    Returns, for each command, its committed ``Attempt`` (the caller calls the
    provider) or its continuation alone; and for each answer, its continuation. If the
    transaction fails, the commands go alone and each answer is recorded alone,
    patiently (``record_sent``): no link is ever sent again for it. A command for an
    order with an answer in the same transaction goes alone too.
    """
    out: list[Attempt | Continuation] = [alone(cmd, uow_factory, ctx) for cmd in cmds]
    recorded: list[Continuation] = [
        partial(record_sent, attempt, receipt, uow_factory, ctx) for attempt, receipt in answers
    ]
    chosen = _distinct(cmds, taken=[a.cmd.order_id for a, _ in answers])
    try:
        with uow_factory() as uow:
            uow.prefetch(
                command_ids=[a.cmd.command_id for a, _ in answers]
                + [cmds[i].command_id for i in chosen],
                order_ids=[a.cmd.order_id for a, _ in answers] + [cmds[i].order_id for i in chosen],
                lock=True,
                link_ids=[cmds[i].link_id for i in chosen],
            )
            orders = [uow.orders.get_for_update(cmds[i].order_id) for i in chosen]
            uow.prefetch(store_ids=[o.store_id for o in orders if o is not None])
            outcomes = [stage_sent(a, receipt, uow, ctx) for a, receipt in answers]
            attempts = _apply_fresh(cmds, chosen, begin_attempt, uow, ctx)
            if outcomes or attempts:
                uow.commit()
    except (DomainError, TransientError):
        return out, recorded
    for i, attempt in attempts.items():
        out[i] = attempt
    return out, [partial(settled, outcome) for outcome in outcomes]


def record_attempts(
    cmds: Sequence[c.SendPaymentLink], uow_factory: UowFactory, ctx: Context
) -> list[Attempt | Continuation]:
    """Send-link step 1 for several links in one transaction (``record_send_steps``)."""
    return record_send_steps(cmds, (), uow_factory, ctx)[0]


def record_answers(
    answers: Sequence[Answer], uow_factory: UowFactory, ctx: Context
) -> list[Continuation]:
    """Send-link step 3 for several accepted links in one transaction
    (``record_send_steps``)."""
    return record_send_steps((), answers, uow_factory, ctx)[1]


def dispatch_batch(
    commands: Sequence[CommandBase], uow_factory: UowFactory, ctx: Context
) -> list[Continuation]:
    """All the steps in the calling thread, one continuation per command (same order).
    The worker runs the same steps, but each thread calls its own provider."""
    kinds = {type(cmd) for cmd in commands}
    if len(kinds) != 1 or not kinds <= BATCHED:
        return [alone(cmd, uow_factory, ctx) for cmd in commands]
    if kinds == {c.CreateOrder}:
        return create_orders(commands, uow_factory, ctx)  # type: ignore[arg-type]
    out = record_attempts(commands, uow_factory, ctx)  # type: ignore[arg-type]
    answers: dict[int, Answer] = {}
    for i, step in enumerate(out):
        if isinstance(step, Attempt):
            receipt = deliver(step, uow_factory, ctx)
            if isinstance(receipt, DeliveryReceipt):
                answers[i] = (step, receipt)
            else:
                out[i] = receipt
    recorded = record_answers(list(answers.values()), uow_factory, ctx) if answers else []
    for i, cont in zip(answers, recorded, strict=True):
        out[i] = cont
    return out  # type: ignore[return-value]
