"""Trajectories of order parameters over time, from the ODE or measured in a simulation."""

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


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Trajectory:
    """Order parameters at the times `t`.

    **Fields** (`...` are optional leading batch dimensions, e.g. seeds, shared by all fields):

    - `t` (n,): the times, in units of SGD steps / N.
    - `eg` (..., n): the generalisation error ε_g (without label noise) of the order parameters.
    - `Q` (..., n, K, K), `R` (..., n, K, M), `v` (..., n, K): the student's order parameters.
    - `T` (..., M, M), `v_star` (..., M): the teacher's, constant in time.
    - `eg_test` (..., n) or None: for simulations, ½⟨(ŷ − y)²⟩ measured on a held-out set of
      noise-free examples, an empirical check on `eg`.
    - `b` (..., K) or None: the feedback vector of feedback alignment, constant in time.
    - `Q_levels` (..., n, L, K, K), `R_levels` (..., n, L, K, M), `T_levels` (..., L, M, M), or
      None: with structured inputs, the overlaps per level of the input spectrum (Q, R, T are
      their sums over levels).
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

    def state_at(self, index: int) -> OrderParameters:
        """The order parameters at time `t[index]`, with the batch dimensions kept."""
        levels = {} if self.Q_levels is None or self.R_levels is None else {
            "Q_levels": self.Q_levels[..., index, :, :, :], "R_levels": self.R_levels[..., index, :, :, :],
            "T_levels": self.T_levels}
        return OrderParameters(
            self.Q[..., index, :, :], self.R[..., index, :, :], self.T,
            self.v[..., index, :], self.v_star, self.b, **levels,
        )

    def initial_state(self) -> OrderParameters:
        """The order parameters at t[0]: start an ODE here to compare with this trajectory."""
        return self.state_at(0)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The fields as NumPy arrays (None fields left out), e.g. for `np.savez`."""
        return {name: np.asarray(value) for name, value in vars(self).items() if value is not None}

    def to_xarray(self):
        """The trajectory as an `xarray.Dataset` (xarray is optional): one variable per field,
        with the dims of `DIMS` after a leading "seed" when there is a seed axis, and integer
        coordinates for seed, student(2) and teacher(2)."""
        return tidy.to_xarray(self.to_numpy(), DIMS)

    def to_dataframe(self):
        """The trajectory as a long `pandas.DataFrame` (pandas is optional): one row per value,
        with columns `seed` (when there is a seed axis), `t` (NaN for the constants T, v_star,
        b), `quantity` (eg, eg_test, Q, R, v, T, v_star, b, and Q_levels, R_levels, T_levels
        for structured inputs), `level` (only then: the level of the input spectrum, <NA> for
        the other quantities), `i`, `j` (the indices, <NA> where the quantity has fewer: Q_ij
        students, R_in student i teacher n, T_nm teachers) and `value`."""
        return tidy.to_dataframe(self.to_numpy(), DIMS)
