"""Trajectories of order parameters over time, from the ODE or measured in a simulation: one
type for a plain run and for a protocol of phases (continual learning), whose phases are data."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from nndyn.core import tidy
from nndyn.core.state import Array, OrderParameters

#: The named dimensions of each field after the optional leading "seed" (to_xarray), and the
#: meaning of the index columns i, j of to_dataframe: students (student, student2) or teachers
#: (teacher, teacher2), 0-based.
DIMS = {
    "eg": ("t",), "eg_test": ("t",), "Q": ("t", "student", "student2"), "R": ("t", "student", "teacher"),
    "v": ("t", "student"), "T": ("teacher", "teacher2"), "v_star": ("teacher",), "b": ("student",),
    "Q_levels": ("t", "level", "student", "student2"), "R_levels": ("t", "level", "student", "teacher"),
    "T_levels": ("level", "teacher", "teacher2"),
}
#: The same for a protocol's trajectory: teacher (count), unit (M), teacher_unit (count·M), head,
#: phase, boundary (the phases' starts and the end).
PROTOCOL_DIMS = {
    "eg": ("t",), "v": ("t", "student"), "eg_teacher": ("t", "teacher"), "Q": ("t", "student", "student2"),
    "R": ("t", "student", "teacher_unit"), "heads": ("t", "head", "student"),
    "T": ("teacher_unit", "teacher_unit2"), "v_star": ("teacher", "unit"), "phase": ("t",), "starts": ("boundary",),
    "reached": ("phase",), "b": ("student",), "eg_test": ("t", "teacher"),
}


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Trajectory:
    """Order parameters at the times `t`, of a plain run or of a protocol of phases.

    **Fields** (`...` are optional leading dimensions, e.g. seeds, shared by all fields):

    - `t` (n,): the times, in units of SGD steps / N.
    - `eg` (..., n): the generalisation error ε_g (without label noise) of the order
      parameters; in a protocol, on the teacher trained up to each time (with its head).
    - `Q` (..., n, K, K), `R` (..., n, K, M), `v` (..., n, K): the student's order parameters;
      in a protocol R is against every teacher unit (M = count·M₁) and v is the head trained
      up to each time.
    - `T` (..., M, M), `v_star` (..., M): the teacher's, constant in time; in a protocol T is
      the teachers' joint overlap and `v_star` (..., count, M₁) their readouts.
    - `eg_test` (..., n) or None: for simulations, ½⟨(ŷ − y)²⟩ measured on a held-out set of
      noise-free examples, an empirical check on `eg`; in a protocol (..., n, count), on every
      teacher's examples (with its head).
    - `b` (..., K) or None: the feedback vector of feedback alignment, constant in time.
    - `Q_levels` (..., n, L, K, K), `R_levels` (..., n, L, K, M), `T_levels` (..., L, M, M), or
      None: with structured inputs, the overlaps per level of the input spectrum (Q, R, T are
      their sums over levels).

    **A protocol's fields** (None for a plain run, which is a protocol of one phase on one
    teacher): `eg_teacher` (..., n, count), ε_g on every teacher with its head; `heads` (..., n,
    H, K), every readout (H = 1 single head, count multi); `phase` (..., n), the phase that
    trained up to each time (0 at t[0], the number of phases once the protocol is over: the
    student then rests); `starts` (..., P + 1), each phase's start time and the protocol's end;
    `reached` (..., P), whether each phase's threshold was reached (True without one).
    """

    t: Array
    eg: Array
    Q: Array
    R: Array
    v: Array
    T: Array
    v_star: Array
    eg_test: Array | None = None
    b: Array | None = None
    Q_levels: Array | None = None
    R_levels: Array | None = None
    T_levels: Array | None = None
    eg_teacher: Array | None = None
    heads: Array | None = None
    phase: Array | None = None
    starts: Array | None = None
    reached: Array | None = None

    @property
    def protocol(self) -> bool:
        """Whether this is a protocol's trajectory (with phases, teachers and heads)."""
        return self.phase is not None

    def state_at(self, index: int) -> OrderParameters:
        """The order parameters at time `t[index]`, with the leading dimensions kept. For a
        protocol: v the head trained then, v_star the teachers' readouts concatenated
        (count·M₁,), and `heads` every readout."""
        levels = {} if self.Q_levels is None or self.R_levels is None else {
            "Q_levels": self.Q_levels[..., index, :, :, :], "R_levels": self.R_levels[..., index, :, :, :],
            "T_levels": self.T_levels}
        v_star, heads = self.v_star, None
        if self.heads is not None:  # a protocol's
            v_star = np.reshape(v_star, np.shape(v_star)[:-2] + (-1,))
            heads = self.heads[..., index, :, :]
        return OrderParameters(
            self.Q[..., index, :, :], self.R[..., index, :, :], self.T,
            self.v[..., index, :], v_star, self.b, **levels, heads=heads,
        )

    def initial_state(self) -> OrderParameters:
        """The order parameters at t[0]: start an ODE (`integrate`, or for a protocol
        `integrate_protocol`, which takes every head from the state) here to compare with this
        trajectory."""
        return self.state_at(0)

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        """The named dimensions of each field after an optional leading "seed" (`DIMS`, or
        `PROTOCOL_DIMS` for a protocol)."""
        return PROTOCOL_DIMS if self.protocol else DIMS

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The fields as NumPy arrays (None fields left out), e.g. for `np.savez`."""
        return {name: np.asarray(value) for name, value in vars(self).items() if value is not None}

    def to_xarray(self):
        """The trajectory as an `xarray.Dataset` (xarray is optional): one variable per field,
        with the dims of `dims` after a leading "seed" when there is a seed axis, and integer
        coordinates for every dimension but t."""
        return tidy.to_xarray(self.to_numpy(), self.dims)

    def to_dataframe(self):
        """The trajectory as a long `pandas.DataFrame` (pandas is optional): one row per value,
        with columns `seed` (when there is a seed axis), `t` (NaN for the constants T, v_star,
        b), `quantity` (the field's name), `level` (only with structured inputs: the level of the
        input spectrum, <NA> for the other quantities), `i`, `j` (the indices in the order of
        `dims`, <NA> where the quantity has fewer: Q_ij students, R_in student i teacher (unit)
        n, T_nm teachers; a protocol's eg_teacher i the teacher, heads i the head j the student)
        and `value`."""
        return tidy.to_dataframe(self.to_numpy(), self.dims)

    def metrics(self, protocol) -> dict:
        """A protocol's figures of merit per task, arrays over the leading dimensions: `final`,
        ε_g at the end; `forgetting`, its ε_g at the end minus when training last left it (NaN
        for a task never trained, or still in training at the end); `transfer`, its ε_g at t = 0
        minus at the moment it is first trained (how much earlier tasks helped; NaN for a task
        never trained). `protocol` is the `Protocol` that ran."""
        if not self.protocol:
            raise ValueError("metrics are a protocol's: this trajectory has no phases")
        eg = np.asarray(self.eg_teacher)
        t, starts = np.asarray(self.t), np.asarray(self.starts)
        count = eg.shape[-1]
        leading = eg.shape[:-2]
        final, forgetting, transfer = (np.full(leading + (count,), np.nan) for _ in range(3))
        final[...] = eg[..., -1, :]
        for index in np.ndindex(*leading):
            times = starts[index]
            for task in range(count):
                trained = [p for p, phase in enumerate(protocol.phases) if phase.teacher == task]
                if not trained:
                    continue
                first, last = trained[0], trained[-1]
                at_start = np.searchsorted(t, times[first] - 1e-9 * max(1.0, t[-1]))
                transfer[index + (task,)] = eg[index + (0, task)] - eg[index + (at_start, task)]
                if last < len(protocol.phases) - 1:
                    left = np.searchsorted(t, times[last + 1] - 1e-9 * max(1.0, t[-1]))
                    forgetting[index + (task,)] = eg[index + (-1, task)] - eg[index + (left, task)]
        return {"final": final, "forgetting": forgetting, "transfer": transfer}
