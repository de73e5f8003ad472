"""Group commit for the busiest commands: the worker threads of one process that hold
a CreateOrder (or a SendPaymentLink) at the same moment run their step in one
transaction.

Each Dramatiq worker thread still handles its own message: it joins the group that is
forming for its step and waits. The first thread to join leads: as soon as no other
group of that step is running in the process, it closes the group, runs it
(``domain.bus.run_group``: the same envelope as one command alone) and wakes the
others. If the group's transaction fails, each thread runs its own step alone
(``run_alone``) and only then returns, so Dramatiq acknowledges a message after its
change has committed, exactly as without grouping.

Send-link has two steps around the provider call: its attempt, then each thread calls
the provider for its own link (concurrently, as without grouping), then its answer.
Both steps join the same group: a group commits the answers of the links whose
provider has answered and the attempts of the next links together.

Nothing waits for a group to fill: a command arriving at an idle process runs at
once, alone. Groups only grow while an earlier group of the same step is still
running, that is, under load, where they save the most.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import structlog

from domain.bus import Job, Result, handle, run_alone, run_group, settled
from domain.delivery import Attempt, deliver
from domain.outcomes import Outcome
from domain.ports import Context, UowFactory
from messages import commands as c
from messages.common import CommandBase

log = structlog.get_logger("paylink.grouping")

#: The commands whose steps are grouped, and the group each joins (the two steps of
#: send-link join one group: answers and the next attempts commit together).
GROUPED: dict[type[CommandBase], str] = {
    c.CreateOrder: "create-order",
    c.SendPaymentLink: "send-link",
}


@dataclass(eq=False)
class _Group:
    jobs: list[Job] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    #: One result per job, or None when the group did not commit (each goes alone).
    results: list[Result] | None = None


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
        name = GROUPED.get(type(command))
        if self.max_size < 2 or name is None:
            return handle(command, self.uow_factory, self.context)
        result = self._gather(name, Job.first(command))
        if not isinstance(result, Attempt):
            return result
        answer = deliver(result, self.uow_factory, self.context)
        return settled(self._gather(name, Job.answer(result, answer)))

    def _gather(self, name: str, job: Job) -> Result:
        """This job's result from the group it joined, or from running it alone."""
        group, index, leader = self._join(name, job)
        if leader:
            self._lead(name, group)
        else:
            group.done.wait()
        if group.results is None:
            return run_alone(job, self.uow_factory, self.context)
        return group.results[index]

    def _join(self, name: str, job: Job) -> tuple[_Group, int, bool]:
        with self._lock:
            group = self._forming.get(name)
            if group is None or len(group.jobs) >= self.max_size:
                group = self._forming[name] = _Group()
                leader = True
            else:
                leader = False
            group.jobs.append(job)
            return group, len(group.jobs) - 1, leader

    def _lead(self, name: str, group: _Group) -> None:
        with self._lock:
            while name in self._running:
                self._lock.wait()
            if self._forming.get(name) is group:  # closed: later commands form the next
                del self._forming[name]
            self._running.add(name)
        try:
            if len(group.jobs) == 1:
                # Alone, while holding the step, so that the next arrivals form a group;
                # what it raises is this thread's own message's failure.
                group.results = [run_alone(group.jobs[0], self.uow_factory, self.context)]
            else:
                group.results = self._run(name, group.jobs)
        finally:
            # Also when interrupted (a time limit, a shutdown): the others go on alone.
            with self._lock:
                self._running.discard(name)
                self._lock.notify_all()
            group.done.set()
        if len(group.jobs) > 1:
            self.groups += 1
            log.debug("grouped step", step=name, size=len(group.jobs))

    def _run(self, name: str, jobs: list[Job]) -> list[Result] | None:
        try:
            return run_group(jobs, self.uow_factory, self.context)
        except Exception:  # a bug: each job then goes on alone, in its own thread
            log.exception("grouped step failed; its commands go on one by one", step=name)
            return None
