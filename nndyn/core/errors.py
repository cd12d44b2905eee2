"""How a solve or a simulation can end badly: `Status` inside JAX, `DivergenceError` outside."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """How a solve ended (the `status` of a `Solution`, an integer array inside JAX)."""

    #: reached the last save time (or, re-integrating a tail about its fixed point, the
    #: deviation below which the flows are round-off: `integrate`)
    ok = 0
    #: an order parameter went non-finite or exceeded the divergence threshold
    diverged = 1
    #: the solver used up its steps
    max_steps = 2


class DivergenceError(FloatingPointError):
    """An integration or a simulation blew up or went non-finite.

    **Attributes:** `time`, the time it happened (for the ODE the last accepted step, for a
    simulation the first record that shows it), and `parameter`, the order parameter ("Q", "R"
    or "v") that went bad, or None when the solver gave up without any of them doing so (too
    many steps). `subject` names what diverged in the message ("the ODE", "the simulation").
    """

    def __init__(self, time: float, parameter: str | None, reason: str, subject: str = "the ODE"):
        self.time, self.parameter = time, parameter
        if parameter is None:
            super().__init__(f"{subject} could not be integrated past t = {time:.6g}: {reason}")
        else:
            super().__init__(f"{subject} diverged at t = {time:.6g}: {parameter} {reason}")
