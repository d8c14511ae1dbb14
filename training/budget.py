"""The wall clock of a run with ``--time-budget``: how much of the budget is used, and whether it is spent."""

from __future__ import annotations

import time


class BudgetClock:
    """Seconds a run has trained, against an optional budget.

    The run ends when ``budget`` seconds have passed (:meth:`done`), but the LR schedule (:meth:`fraction`) leaves
    out each session's first, compiling step (:meth:`mark_warm`), so compiling cannot eat the warmup: the schedule
    runs from 0 to 1 over the budget's remaining seconds.

    Args:
        budget: seconds the run may train (``None``: no budget, :meth:`fraction` is 0 and :meth:`done` False).
        elapsed: seconds already trained by earlier sessions of this run (``--resume``).
        excluded: seconds of those that the schedule left out (their first steps).
    """

    def __init__(self, budget: float | None = None, elapsed: float = 0.0, excluded: float = 0.0) -> None:
        self.budget, self.offset = budget, float(elapsed)
        self.excluded_before, self.skipped = float(excluded), 0.0
        self.t0: float | None = None

    def start(self) -> None:
        """Start (or restart) counting from now, on top of the earlier sessions' time."""
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds trained, earlier sessions included."""
        return self.offset + (time.perf_counter() - self.t0 if self.t0 is not None else 0.0)

    def mark_warm(self) -> float:
        """The session's first step is done: leave its time so far out of the schedule. Returns those seconds."""
        self.skipped = self.elapsed() - self.offset
        return self.skipped

    @property
    def excluded(self) -> float:
        """Seconds the schedule leaves out, earlier sessions included."""
        return self.excluded_before + self.skipped

    def fraction(self) -> float:
        """Share of the schedule done, in [0, 1]: trained seconds less the excluded ones, over the budget less them."""
        if not self.budget:
            return 0.0
        span = max(self.budget - self.excluded, 1e-9)
        return min(max(self.elapsed() - self.excluded, 0.0) / span, 1.0)

    def done(self) -> bool:
        """True once the budget is spent."""
        return bool(self.budget) and self.elapsed() >= self.budget
