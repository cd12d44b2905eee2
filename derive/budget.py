"""A time budget for deriving a user's activation: the derivation names each step it enters
(`step`) and checks the clock there and inside the closed-form rules' recursion (`check`); past
the deadline it stops with `BudgetExceeded`, which names the step that was running."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """The derivation ran past its budget of `seconds`; `stage` was running."""

    def __init__(self, seconds: float, stage: str):
        super().__init__(f"{stage} was still running after {seconds:g} s")
        self.seconds, self.stage = seconds, stage


@dataclass
class _Budget:
    seconds: float
    deadline: float
    stage: str = "starting"


_CURRENT: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("nndyn_derive_budget", default=None)


@contextlib.contextmanager
def limited(seconds: float | None) -> Iterator[None]:
    """Within the block, the derivation may take `seconds` (None or 0: no limit)."""
    token = _CURRENT.set(_Budget(seconds, time.monotonic() + seconds) if seconds else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def step(stage: str) -> None:
    """Enter `stage` (a phrase naming what runs, for the message of `BudgetExceeded`) and check."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.stage = stage
    check()


def check() -> None:
    """Raise `BudgetExceeded` when past the deadline of the enclosing `limited` block."""
    budget = _CURRENT.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise BudgetExceeded(budget.seconds, budget.stage)
