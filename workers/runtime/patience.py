"""How long a worker keeps recording a provider's answer before letting the runtime
redeliver (which would send the link again): policy, injected into the domain as
``Context.patience``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from domain.errors import TransientError

T = TypeVar("T")

#: Recording a provider's answer retries the database for up to 40 s: below the 60 s
#: actor time limit (``workers.runtime.actors``), so a slow recording is never cut off mid-way.
RECORD_PATIENCE_SECONDS = 40.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry a step after a ``TransientError``, waiting ``first`` seconds, doubling up to
    ``longest``, until ``limit`` seconds have passed on ``clock``."""

    limit: float = RECORD_PATIENCE_SECONDS
    first: float = 0.2
    longest: float = 5.0
    clock: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], None] = field(default=time.sleep)

    def call(self, step: Callable[[], T]) -> T:
        delay, deadline = self.first, self.clock() + self.limit
        while True:
            try:
                return step()
            except TransientError:
                if self.clock() + delay > deadline:
                    raise
                self.sleep(delay)
                delay = min(delay * 2, self.longest)
