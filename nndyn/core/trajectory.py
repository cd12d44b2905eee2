"""Trajectories of order parameters over time, from the ODE or measured in a simulation."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from nndyn.core.state import OrderParameters


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
    """

    t: jax.Array
    eg: jax.Array
    Q: jax.Array
    R: jax.Array
    v: jax.Array
    T: jax.Array
    v_star: jax.Array
    eg_test: jax.Array | None = None
    b: jax.Array | None = None

    def state_at(self, index: int) -> OrderParameters:
        """The order parameters at time `t[index]`, with the batch dimensions kept."""
        return OrderParameters(
            self.Q[..., index, :, :], self.R[..., index, :, :], self.T,
            self.v[..., index, :], self.v_star, self.b,
        )

    def initial_state(self) -> OrderParameters:
        """The order parameters at t[0]: start an ODE here to compare with this trajectory."""
        return self.state_at(0)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The fields as NumPy arrays (None fields left out), e.g. for `np.savez`."""
        return {name: np.asarray(value) for name, value in vars(self).items() if value is not None}
