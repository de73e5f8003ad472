"""Group commit for the busiest commands: the worker threads of one process that hold
a CreateOrder (or a SendPaymentLink) at the same moment apply them in one transaction.

Each Dramatiq worker thread still handles its own message: it joins the batch that is
forming for its command type and waits. The first thread to join leads: as soon as
fewer than ``concurrency`` batches of that type are running in the process, it closes
the batch, runs ``domain.batch.dispatch_batch`` and wakes the others. Each thread then
runs its continuation (the committed outcome, or the single-command path) and only
then returns, so Dramatiq acknowledges a message after its change has committed,
exactly as without batching.

Nothing waits for a batch to fill: a command arriving at an idle process runs at once,
alone. Batches only grow while an earlier batch of the same type is still running,
that is, under load, where they save the most.
"""

from __future__ import annotations

import threading
from functools import partial
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from domain.batch import BATCHED, Continuation, settled
from domain.dispatch import dispatch
from domain.outcomes import Outcome, UowFactory
from messages.common import CommandBase

log = structlog.get_logger("paylink.batching")

RunBatch = Callable[[Sequence[CommandBase]], list[Continuation]]


@dataclass(eq=False)
class _Batch:
    commands: list[CommandBase] = field(default_factory=list)
    closed: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    continuations: list[Continuation] = field(default_factory=list)


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        uow_factory: UowFactory,
        context: object,
        *,
        max_size: int,
        concurrency: int = 1,
    ) -> None:
        self._run_batch = run_batch
        self._uow_factory = uow_factory
        self._context = context
        self.max_size = max_size
        self.concurrency = concurrency
        self._lock = threading.Condition()
        self._forming: dict[type[CommandBase], _Batch] = {}
        self._running: dict[type[CommandBase], int] = {}
        #: Batches run and commands in them, for the log and the tests.
        self.batches = 0
        self.batched_commands = 0

    def dispatch(self, command: CommandBase) -> Outcome:
        kind = type(command)
        if self.max_size < 2 or kind not in BATCHED:
            return dispatch(command, self._uow_factory, self._context)  # type: ignore[arg-type]
        batch, index, leader = self._join(kind, command)
        if leader:
            self._lead(kind, batch)
        else:
            batch.done.wait()
        return batch.continuations[index]()

    def _join(self, kind: type[CommandBase], command: CommandBase) -> tuple[_Batch, int, bool]:
        with self._lock:
            batch = self._forming.get(kind)
            leader = batch is None or batch.closed or len(batch.commands) >= self.max_size
            if leader:
                batch = self._forming[kind] = _Batch()
            assert batch is not None
            batch.commands.append(command)
            return batch, len(batch.commands) - 1, leader

    def _lead(self, kind: type[CommandBase], batch: _Batch) -> None:
        with self._lock:
            while self._running.get(kind, 0) >= self.concurrency:
                self._lock.wait()
            batch.closed = True
            if self._forming.get(kind) is batch:
                del self._forming[kind]
            self._running[kind] = self._running.get(kind, 0) + 1
        continuations: list[Continuation] | None = None
        try:
            continuations = self._run(batch.commands)
        finally:
            # Interrupted (a time limit, a shutdown): the others run alone.
            batch.continuations = continuations or self._alone(batch.commands)
            with self._lock:
                self._running[kind] -= 1
                self._lock.notify_all()
            batch.done.set()

    def _run(self, commands: list[CommandBase]) -> list[Continuation]:
        if len(commands) == 1:
            # Run it here, inside the running batch: what arrives meanwhile waits and
            # forms the next batch. Its exception is the leader's own to raise.
            outcome = dispatch(commands[0], self._uow_factory, self._context)  # type: ignore[arg-type]
            return [partial(settled, outcome)]
        try:
            continuations = self._run_batch(commands)
        except Exception:  # a bug: each command then runs alone, in its own thread
            log.exception("batch failed; its commands run one by one", size=len(commands))
            return self._alone(commands)
        self.batches += 1
        self.batched_commands += len(commands)
        log.debug("batch applied", command_type=type(commands[0]).__name__, size=len(commands))
        return continuations

    def _alone(self, commands: Sequence[CommandBase]) -> list[Continuation]:
        return [
            partial(dispatch, cmd, self._uow_factory, self._context)  # type: ignore[arg-type]
            for cmd in commands
        ]
