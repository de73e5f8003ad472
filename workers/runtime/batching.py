"""Group commit for the busiest commands: the worker threads of one process that hold
a CreateOrder (or a SendPaymentLink) at the same moment apply them in one transaction.

Each Dramatiq worker thread still handles its own message: it joins the group that is
forming for its step and waits. The first thread to join leads: as soon as no other
group of that step is running in the process, it closes the group, runs the step for
all of it (``domain.batch``) and wakes the others. Each thread then
runs its own continuation (the committed outcome, or the single-command path) and only
then returns, so Dramatiq acknowledges a message after its change has committed,
exactly as without batching.

Send-link records twice around the provider call: its attempt, then each thread
calls the provider for its own link (concurrently, as without batching), then its
answer. Both recordings join one group step: a group commits the answers of the
links whose provider has answered and the attempts of the next links together, in
one transaction.

Nothing waits for a group to fill: a command arriving at an idle process runs at
once, alone. Groups only grow while an earlier group of the same step is still
running, that is, under load, where they save the most.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from domain.batch import (
    BATCHED,
    Answer,
    Continuation,
    alone,
    create_orders,
    record_send_steps,
)
from domain.delivery import Attempt, deliver, record_sent
from domain.dispatch import dispatch
from domain.notifications import DeliveryReceipt
from domain.outcomes import Outcome, UowFactory
from domain.ports import Context
from messages import commands as c
from messages.common import CommandBase

log = structlog.get_logger("paylink.batching")


@dataclass(eq=False)
class _Group:
    items: list[Any] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Any] = field(default_factory=list)


class Batcher:
    def __init__(self, uow_factory: UowFactory, context: Context, *, max_size: int) -> None:
        self.uow_factory = uow_factory
        self.context = context
        self.max_size = max_size
        self._lock = threading.Condition()
        #: The open group of each step: the next command of that step joins it.
        self._forming: dict[str, _Group] = {}
        #: Steps with a group running (one at a time per step and process).
        self._running: set[str] = set()
        #: Groups of two or more run (for the tests).
        self.groups = 0

    def dispatch(self, command: CommandBase) -> Outcome:
        if self.max_size < 2 or type(command) not in BATCHED:
            return dispatch(command, self.uow_factory, self.context)
        if isinstance(command, c.CreateOrder):
            created: Continuation = self._gather("create-order", command, self._create, self._alone)
            return created()
        assert isinstance(command, c.SendPaymentLink)
        step: Attempt | Continuation = self._gather(
            "send-link", command, self._record, self._record_alone
        )
        if not isinstance(step, Attempt):
            return step()
        receipt = deliver(step, self.uow_factory, self.context)
        if not isinstance(receipt, DeliveryReceipt):
            return receipt()
        recorded: Continuation = self._gather(
            "send-link", (step, receipt), self._record, self._record_alone
        )
        return recorded()

    # ---- the steps ---------------------------------------------------------------

    def _create(self, cmds: list[c.CreateOrder]) -> list[Continuation]:
        return create_orders(cmds, self.uow_factory, self.context)

    def _record(self, items: list[c.SendPaymentLink | Answer]) -> list[Attempt | Continuation]:
        """Attempts (commands) and answers, in one transaction; results in item order."""
        cmds = [item for item in items if isinstance(item, c.SendPaymentLink)]
        answers = [item for item in items if not isinstance(item, c.SendPaymentLink)]
        attempted, recorded = record_send_steps(cmds, answers, self.uow_factory, self.context)
        results, answered = iter(attempted), iter(recorded)
        return [
            next(results) if isinstance(item, c.SendPaymentLink) else next(answered)
            for item in items
        ]

    def _alone(self, command: CommandBase) -> Continuation:
        return alone(command, self.uow_factory, self.context)

    def _record_alone(self, item: c.SendPaymentLink | Answer) -> Continuation:
        if isinstance(item, c.SendPaymentLink):
            return self._alone(item)
        return partial(record_sent, *item, self.uow_factory, self.context)

    # ---- grouping ----------------------------------------------------------------

    def _gather(
        self,
        step: str,
        item: Any,
        run: Callable[[list[Any]], Sequence[Any]],
        fallback: Callable[[Any], Continuation],
    ) -> Any:
        """This item's result from ``run`` over the group it joined."""
        group, index, leader = self._join(step, item)
        if leader:
            self._lead(step, group, run, fallback)
        else:
            group.done.wait()
        return group.results[index]

    def _join(self, step: str, item: Any) -> tuple[_Group, int, bool]:
        with self._lock:
            group = self._forming.get(step)
            leader = group is None or len(group.items) >= self.max_size
            if leader:
                group = self._forming[step] = _Group()
            assert group is not None
            group.items.append(item)
            return group, len(group.items) - 1, leader

    def _lead(
        self,
        step: str,
        group: _Group,
        run: Callable[[list[Any]], Sequence[Any]],
        fallback: Callable[[Any], Continuation],
    ) -> None:
        with self._lock:
            while step in self._running:
                self._lock.wait()
            if self._forming.get(step) is group:  # closed: later commands form the next
                del self._forming[step]
            self._running.add(step)
        results: Sequence[Any] | None = None
        try:
            results = run(group.items)
        except Exception:  # a bug: each item then goes on alone, in its own thread
            log.exception("batched step failed; its commands go on one by one", step=step)
        finally:
            # Also when interrupted (a time limit, a shutdown): the others go on alone.
            group.results = list(results) if results is not None else []
            if len(group.results) != len(group.items):
                group.results = [fallback(item) for item in group.items]
            with self._lock:
                self._running.discard(step)
                self._lock.notify_all()
            group.done.set()
        if len(group.items) > 1:
            self.groups += 1
            log.debug("batched step", step=step, size=len(group.items))
