"""The wall clock of a run with ``--time-budget``: how much of the budget is used, and whether it is spent."""

from __future__ import annotations

import time


class BudgetClock:
    """Seconds a run has trained, against an optional budget.

    Args:
        budget: seconds the run may train (``None``: no budget, :meth:`fraction` is 0 and :meth:`done` False).
        elapsed: seconds already trained by earlier sessions of this run (``--resume``).
    """

    def __init__(self, budget: float | None = None, elapsed: float = 0.0) -> None:
        self.budget, self.offset = budget, float(elapsed)
        self.t0: float | None = None

    def start(self) -> None:
        """Start (or restart) counting from now, on top of the earlier sessions' time."""
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds trained, earlier sessions included."""
        return self.offset + (time.perf_counter() - self.t0 if self.t0 is not None else 0.0)

    def fraction(self) -> float:
        """Share of the budget used, in [0, 1]."""
        return min(self.elapsed() / self.budget, 1.0) if self.budget else 0.0

    def done(self) -> bool:
        """True once the budget is spent."""
        return bool(self.budget) and self.elapsed() >= self.budget
