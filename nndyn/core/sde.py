"""Sample paths of the SDE of SGD at finite N (docs/conventions.md, "Finite N: fluctuations"):

    dX = f(X) dt + N^−1/2 S(X) dW,    S Sᵀ = D(X),

X the order parameters in the coordinates of `nndyn.core.diffusion.coordinate_names`, f the
flows and D the diffusion matrix of one step. Beyond the linear noise it follows the seeds where
their deviation from the ODE is not small, e.g. out of a plateau, whose escape times
(`escape_times`) are then those of SGD. Euler–Maruyama through the one solve
(`nndyn.core.solver`), one Brownian path per seed; S = V √Λ from D's eigendecomposition (any S
with S Sᵀ = D gives the same law), D on a rule of NOISE_POINTS Sobol' points (or the exact rule of
polynomial activations): the noise needs D to a few per cent (1 % in D moves an escape time by
ln(1.01)/(2λ_u), 0.1 at λ_u = 0.05), not to the linear noise's 2e-3.
Isotropic inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core.diffusion import input_dimension, moments, require_isotropic, rule_of
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.fixed_points import coordinates
from nndyn.core.kernels import Kernels
from nndyn.core.setting import Setting
from nndyn.core.solver import ORDER_PARAMETERS, Flows, ODEOptions, resolve_options, solve_many
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory

NOISE_POINTS = 1 << 9  # Sobol' points of the rule D is taken on inside the SDE
STEP = 0.1  # the longest Euler–Maruyama step by default


@dataclass(frozen=True)
class Noisy(Flows):
    """The flows of the full order parameters with the noise N^−1/2 S(X) dW, for
    `nndyn.core.solver.solve` (method euler): args those of `Kernels.rhs`, with "rule" (a
    `nndyn.core.diffusion.rule` as arrays), "scale" (N^−1/2) and "key" (the Brownian path's)."""

    trained: bool

    def noise(self, kernels: Kernels):
        import lineax

        def size(y) -> int:
            K, M = y["R"].shape
            return K * (K + 1) // 2 + K * M + (K if self.trained else 0)

        def operator(t, y, args):
            K, M = y["R"].shape
            _, unflatten = coordinates(K, M, self.trained)
            values, vectors = jnp.linalg.eigh(moments(kernels, y, args, args["rule"], self.trained)[1])
            S = args["scale"] * vectors * jnp.sqrt(jnp.maximum(values, 0.0))
            fixed = jnp.zeros_like(y["v"])  # v gets no noise where it is not trained
            return lineax.FunctionLinearOperator(lambda dW: unflatten(S @ dW, fixed),
                                                 jax.ShapeDtypeStruct((S.shape[1],), S.dtype))

        return size, operator

    @property
    def sources(self) -> tuple[str, ...]:
        from nndyn.core import diffusion, fixed_points

        return (__file__, diffusion.__file__, fixed_points.__file__)


def sample_paths(setting: Setting, init: OrderParameters, t, N: int, *, seeds: int | Sequence[int] = 4,
                 dt: float | None = None) -> Trajectory:
    """Sample paths of the SDE of `setting` at input dimension N (module docstring), from `init`
    at t[0], saved at the times `t`.

    **Arguments:** `init`, one state (every path starts there) or one per seed (leading axis S,
    e.g. SGD's `Trajectory.initial_state()`); `seeds`, a count S (seeds 0..S−1) or the seeds,
    each its own Brownian path (from fold_in(PRNGKey(seed), 2)); `dt`, the Euler–Maruyama step
    (default: the longest step up to STEP that divides the saves' smallest spacing).

    **Returns:** a `Trajectory` with a leading seed axis, like `simulate`'s. Raises
    `DivergenceError` naming the seed where a path blows up.
    """
    require_isotropic(setting)
    N = input_dimension(N)
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    elif isinstance(seeds, (Sequence, np.ndarray)):
        seeds = list(seeds)
    if not isinstance(seeds, list) or not seeds or any(
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0 for seed in seeds):
        raise ValueError(f"seeds must be a count ≥ 1 or a list of integer seeds ≥ 0, got {seeds!r}")
    ts = np.asarray(t, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("t must be a 1-d increasing array of at least two finite times")
    init.validate()
    if (init.K, init.M) != (setting.K, setting.M):
        raise ValueError(f"init has K={init.K}, M={init.M} but the setting has K={setting.K}, M={setting.M}")
    S = len(seeds)
    if init.Q.ndim == 2:
        def stacked(value):
            return jnp.broadcast_to(jnp.asarray(value), (S, *np.shape(value)))

        init = OrderParameters(stacked(init.Q), stacked(init.R), stacked(init.T), stacked(init.v), stacked(init.v_star),
                               None if init.b is None else stacked(init.b))
    elif init.Q.shape[:-2] != (S,):
        raise ValueError(f"init has leading dimensions {init.Q.shape[:-2]}; expected none or ({S},), one per seed")
    if dt is None:
        spacing = float(np.min(np.diff(ts)))
        dt = spacing / math.ceil(spacing / STEP - 1e-9)
    options = resolve_options(ODEOptions(method="euler"), ts, dt)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(seed)), 2) for seed in seeds])
    args = {**setting.ode_args(init.T, init.v_star, init.b), "rule": rule_of(setting, NOISE_POINTS),
            "scale": 1.0 / math.sqrt(N), "key": keys}
    solution = solve_many(setting, init.as_ode_state(), args, ts, options, dt, leading=1,
                          flows=Noisy(setting.train_second_layer))
    status = np.asarray(solution.status)
    if np.any(status != Status.ok):
        index = int(np.argmax(status != Status.ok))
        parameter = ORDER_PARAMETERS[int(np.argmax(np.asarray(solution.bad)[index]))]
        raise DivergenceError(float(np.asarray(solution.failed_at)[index]), parameter,
                              f"went non-finite or exceeded {options.divergence_threshold:g} in magnitude "
                              f"(seed {seeds[index]})", subject="the SDE")
    ys = solution.ys
    return Trajectory(jnp.asarray(ts), solution.eg, ys["Q"], ys["R"], ys["v"], init.T, init.v_star, b=init.b)


def escape_times(trajectory: Trajectory, level: float) -> np.ndarray:
    """The first time ε_g falls below `level` on each path of `trajectory` (leading dimensions
    (...,); linear interpolation between saves), inf where it never does: with `level` below a
    plateau's ε_g and above the learned one, the plateau's escape time."""
    eg = np.asarray(trajectory.eg, dtype=np.float64)
    t = np.asarray(trajectory.t, dtype=np.float64)
    below = eg < level
    first = np.argmax(below, axis=-1)
    times = np.full(eg.shape[:-1], np.inf)
    for index in np.ndindex(*eg.shape[:-1]):
        k = int(first[index])
        if not below[index][k]:
            continue
        if k == 0:
            times[index] = t[0]
            continue
        before, after = eg[index][k - 1], eg[index][k]
        times[index] = t[k - 1] + (before - level) / (before - after) * (t[k] - t[k - 1])
    return times
