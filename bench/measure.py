"""Small statistics and timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measured quantity: its repetitions and how to show it."""

    key: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    #: How many decimals to show.
    digits: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def show(self, value: float | None = None) -> str:
        v = self.median if value is None else value
        return f"{v:,.{self.digits}f}"

    def reps(self) -> str:
        if len(self.values) > 5:
            return f"{len(self.values)} samples, {self.show(min(self.values))} to {self.show(max(self.values))}"
        return ", ".join(self.show(v) for v in self.values)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
