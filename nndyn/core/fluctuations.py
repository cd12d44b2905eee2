"""The linear-noise prediction of SGD's fluctuations about the ODE at finite N (docs/conventions.md,
"Finite N: fluctuations"): the covariance along a trajectory (`fluctuations`: dC/dt = J C + C Jᵀ
+ D, C(0) = 0, integrated beside the ODE by the one solve), at a stable fixed point
(`stationary_fluctuations`: J C + C Jᵀ + D = 0), and whether SGD's seeds spread as predicted
(`spread_verdict`); D is the diffusion matrix of one step (`nndyn.core.diffusion`), C is in the
coordinates of X (`nndyn.core.diffusion.coordinate_names`). Isotropic inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import schema
from nndyn.core.compare import Agreement
from nndyn.core.diffusion import (
    SOBOL_POINTS,
    coordinate_names,
    diffusion_matrix,
    input_dimension,
    moments,
    require_isotropic,
    rule_of,
)
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.fixed_points import FixedPoint, coordinates
from nndyn.core.fixed_points import _field as fixed_point_field
from nndyn.core.integrate import integrate
from nndyn.core.kernels import Kernels
from nndyn.core.setting import Setting
from nndyn.core.solver import ORDER_PARAMETERS, Flows, ODEOptions, resolve_options, solve_many
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory


@dataclass(frozen=True)
class LinearNoise(Flows):
    """The flows of the state and its linear-noise covariance, for `nndyn.core.solver.solve`: y
    = {"Q", "R", "v", "C"}, C (P, P) in the coordinates of X (`trained`: v among them); args
    those of `Kernels.rhs` and "rule", a `rule` as arrays. The error is (ε_g, ∇ε_gᵀ C ∇ε_g), the
    mean of ε_g and N times its variance."""

    trained: bool

    def field(self, kernels: Kernels) -> Callable:
        def field(t, y, args):
            state = {name: y[name] for name in ORDER_PARAMETERS}
            K, M = state["R"].shape
            flatten, unflatten = coordinates(K, M, self.trained)

            def flow(x):
                return flatten(kernels.rhs(t, unflatten(x, state["v"]), args))

            drift, tangent = jax.linearize(flow, flatten(state))
            J = jax.vmap(tangent, out_axes=1)(jnp.eye(drift.shape[0], dtype=drift.dtype))
            D = moments(kernels, state, args, args["rule"], self.trained)[1]
            C = y["C"]
            return {**unflatten(drift, jnp.zeros_like(state["v"])), "C": J @ C + C @ J.T + D}

        return field

    def error(self, kernels: Kernels) -> Callable:
        def error(y, args):
            state = {name: y[name] for name in ORDER_PARAMETERS}
            K, M = state["R"].shape
            flatten, unflatten = coordinates(K, M, self.trained)
            eg, gradient = jax.value_and_grad(lambda x: kernels.eg(unflatten(x, state["v"]), args))(flatten(state))
            return jnp.stack([eg, gradient @ y["C"] @ gradient])

        return error

    @property
    def sources(self) -> tuple[str, ...]:
        from nndyn.core import diffusion, fixed_points

        return (__file__, diffusion.__file__, fixed_points.__file__)


@dataclass(frozen=True)
class Fluctuations:
    """The predicted fluctuations of the order parameters of SGD at input dimension N.

    **Fields:** `t` (n,) the times (one time, inf, for a stationary prediction); `N`; `K`, `M`,
    `trained`, the model's units and whether v is a coordinate; `covariance` (..., n, P, P),
    Cov[X_N(t) − X(t)] = C(t)/N in the coordinates `names` (P of them), leading dimensions as
    the trajectory's; `eg_var` (..., n), the variance of ε_g, ∇ε_gᵀ C ∇ε_g/N; `names`, the
    coordinates' names (`coordinate_names`); `ode`, the ODE's `Trajectory` the covariance is
    about (the mean), or None for a stationary prediction.
    """

    t: np.ndarray
    N: int
    K: int
    M: int
    trained: bool
    covariance: np.ndarray
    eg_var: np.ndarray
    names: tuple[str, ...]
    ode: Trajectory | None = None

    def variance(self, name: str) -> np.ndarray:
        """The variance of every entry of order parameter `name` ("Q", "R" or "v"), shaped like
        it after (..., n): Q (..., n, K, K), R (..., n, K, M), v (..., n, K) (zero where v is not
        trained)."""
        if name not in ORDER_PARAMETERS:
            raise ValueError(f"name must be one of {ORDER_PARAMETERS}, got {name!r}")
        diagonal = np.diagonal(self.covariance, axis1=-2, axis2=-1)
        _, unflatten = coordinates(self.K, self.M, self.trained)
        flat = diagonal.reshape(-1, diagonal.shape[-1])
        values = np.stack([np.asarray(unflatten(jnp.asarray(row), jnp.zeros(self.K))[name]) for row in flat])
        return values.reshape(diagonal.shape[:-1] + values.shape[1:])

    def std(self, name: str) -> np.ndarray:
        """The standard deviation of every entry of `name` (`variance`'s square root)."""
        return np.sqrt(self.variance(name))


def mean_state(state: OrderParameters) -> OrderParameters:
    """The mean over the leading (seed) axis of `state`: the start of a prediction about seeds
    that start alike."""

    def averaged(value):
        return jnp.mean(jnp.asarray(value), axis=0)

    return OrderParameters(averaged(state.Q), averaged(state.R), averaged(state.T), averaged(state.v),
                           averaged(state.v_star), None if state.b is None else averaged(state.b))


def initial_covariance(T, init_scale: float, K: int, trained: bool) -> np.ndarray:
    """N times the covariance of the initial order parameters of students with i.i.d.
    N(0, init_scale²) weights (`nndyn.simulate`'s) before a fixed teacher of overlaps T (M, M),
    in the coordinates of `coordinate_names` (P, P): N Cov(Q_ik, Q_jl) = s⁴(δ_ij δ_kl + δ_il δ_kj),
    N Cov(R_in, R_jm) = δ_ij s² T_nm, Q and R uncorrelated (odd moments). v's rows are zero: a
    random v is an O(1) draw, not an O(N^−1/2) fluctuation, and the soft committee machine's is 1."""
    T, s = np.asarray(T, dtype=np.float64), float(init_scale)
    names = coordinate_names(K, T.shape[0], trained)
    entries = [(name[0], tuple(int(index) for index in name[2:-1].split(","))) for name in names]
    C = np.zeros((len(names), len(names)))
    for a, (kind, first) in enumerate(entries):
        for b, (other, second) in enumerate(entries):
            if kind == other == "Q":
                (i, k), (j, l) = first, second
                C[a, b] = s**4 * ((i == j) * (k == l) + (i == l) * (k == j))
            elif kind == other == "R":
                (i, n), (j, m) = first, second
                C[a, b] = s**2 * T[n, m] * (i == j)
    return C


def fluctuations(setting: Setting, trajectory: Trajectory | OrderParameters, N: int, t=None, *,
                 points: int = SOBOL_POINTS, initial=None, **options) -> Fluctuations:
    """The linear-noise prediction of SGD's fluctuations at input dimension N about the ODE
    (docs/conventions.md): C(t) from dC/dt = J C + C Jᵀ + D(X(t)), C(t[0]) = `initial` (default
    0), integrated beside the ODE's X(t) by the one solve (`nndyn.core.solver`).

    **Arguments:** `trajectory`, a `Trajectory` (e.g. SGD's: the prediction is about the ODE
    started at each seed's own initial order parameters, `Trajectory.initial_state()`, at the
    trajectory's times) or the `OrderParameters` to start from, with `t` (n,) the times;
    `points`, the Sobol' points D is taken on where its rule is not exact (a power of 2; the
    default's D is within about 2e-3, and the cost of a step is about proportional to it);
    `initial` (P, P) or (..., P, P), N times the covariance of the initial order parameters
    about the state started from (default 0: the prediction about each seed's own ODE;
    `initial_covariance` for the spread of random students about their mean start);
    `options`, fields of `ODEOptions` (method "adaptive" or "implicit").

    **Returns:** `Fluctuations`, with the leading dimensions of the initial state.
    """
    require_isotropic(setting)
    N = input_dimension(N)
    if isinstance(trajectory, Trajectory):
        if trajectory.protocol:
            raise ValueError("fluctuations are predicted for a plain run, not a protocol's phases")
        init, ts = trajectory.initial_state(), np.asarray(trajectory.t if t is None else t, dtype=np.float64)
    else:
        if t is None:
            raise ValueError("t: the times are needed when starting from OrderParameters")
        init, ts = trajectory, np.asarray(t, dtype=np.float64)
    init.validate()
    if (init.K, init.M) != (setting.K, setting.M):
        raise ValueError(f"the state has K={init.K}, M={init.M} but the setting has K={setting.K}, M={setting.M}")
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("t must be a 1-d increasing array of at least two finite times")
    options = ODEOptions(**{"refine_tail": False, **options})
    if options.method == "euler":
        raise schema.ParameterError("method", "the fluctuations are integrated by an adaptive method "
                                              "(adaptive or implicit), not euler")
    options = resolve_options(options, ts, None)
    names = coordinate_names(setting.K, setting.M, setting.train_second_layer)
    leading = init.Q.ndim - 2
    y0 = {**{name: jnp.asarray(value) for name, value in init.as_ode_state().items()},
          "C": jnp.zeros(init.Q.shape[:-2] + (len(names), len(names)))}
    if initial is not None:
        start = np.asarray(initial, dtype=np.float64)
        if start.shape[-2:] != (len(names), len(names)) or not np.all(np.isfinite(start)) or np.any(
                np.abs(start - np.swapaxes(start, -1, -2)) > 1e-12 * np.max(np.abs(start), initial=1.0)):
            raise schema.ParameterError("initial", f"initial must be a finite symmetric ({len(names)}, {len(names)}) "
                                                   f"covariance in the coordinates {names[0]}, …; got {start.shape}")
        y0["C"] = jnp.broadcast_to(jnp.asarray(start), y0["C"].shape)
    args = {**setting.ode_args(init.T, init.v_star, init.b), "rule": rule_of(setting, points)}
    solution = solve_many(setting, y0, args, ts, options, leading=leading,
                          flows=LinearNoise(setting.train_second_layer))
    status = np.asarray(solution.status)
    if np.any(status != Status.ok):
        index = np.unravel_index(np.argmax(status != Status.ok), status.shape)
        reason = ("went non-finite or too large" if status[index] == Status.diverged
                  else f"the solver used up its {options.max_steps} steps")
        raise DivergenceError(float(np.asarray(solution.failed_at)[index]), None, reason,
                              subject="the linear-noise covariance")
    ys, error = solution.ys, np.asarray(solution.eg)
    ode = Trajectory(jnp.asarray(ts), jnp.asarray(error[..., 0]), ys["Q"], ys["R"], ys["v"], init.T, init.v_star,
                     b=init.b)
    return Fluctuations(ts, N, setting.K, setting.M, setting.train_second_layer, np.asarray(ys["C"]) / N,
                        error[..., 1] / N, names, ode)


def stationary_fluctuations(setting: Setting, point: FixedPoint, N: int) -> Fluctuations:
    """The stationary fluctuations of SGD at input dimension N about a stable fixed point: C*
    solving J C* + C* Jᵀ + D = 0 (docs/conventions.md), J and D at the point; returned as
    `Fluctuations` at one time, t = inf (`ode` None). Raises ValueError where the point is not
    stable (no stationary spread: the linear noise grows along its unstable or marginal
    directions)."""
    from scipy.linalg import solve_continuous_lyapunov

    require_isotropic(setting)
    N = input_dimension(N)
    if not isinstance(point, FixedPoint) or not isinstance(point.state, OrderParameters):
        raise ValueError("point: a FixedPoint of the full flows (nndyn.fixed_point from OrderParameters)")
    if point.kind != "stable":
        raise ValueError(f"this fixed point is {point.kind}: a stationary spread exists only at a stable one")
    state = point.state
    names = coordinate_names(setting.K, setting.M, setting.train_second_layer)
    args = setting.ode_args(jnp.asarray(state.T), jnp.asarray(state.v_star), state.b)
    D = diffusion_matrix(setting, state)
    _, jacobian, flatten, *_ = fixed_point_field(setting)  # fixed_point's compiled Jacobian
    J = jacobian(flatten(state.as_ode_state()), jnp.asarray(state.v), args)
    C = solve_continuous_lyapunov(np.asarray(J), -D)
    C = 0.5 * (C + C.T)
    gradient = np.asarray(point.eg_gradient)
    return Fluctuations(np.array([np.inf]), N, setting.K, setting.M, setting.train_second_layer, C[None] / N,
                        np.array([gradient @ C @ gradient / N]), names)


#: Directions of the predicted covariance with eigenvalues below this share of the largest are
#: left out of `spread_verdict` (at t → t[0] and in flat directions the prediction is round-off).
KEPT = 1e-9


def spread_verdict(setting: Setting, sim: Trajectory, N: int, *, family_level: float = 1e-3) -> Agreement:
    """Whether SGD's seeds spread about their own ODE as the linear noise predicts, at input
    dimension N (an `Agreement`, score "spread").

    At every recorded time after the first, the S seeds' deviations d_s = X_s − X_s^ODE (ODE from
    each seed's initial state), whitened by the predicted covariance C(t)/N (taken from the seeds'
    mean initial state; its directions with eigenvalues above KEPT of the largest, r of them),
    give Σ_s |d̃_s|², χ² with S·r degrees of freedom when the prediction is right; its normal
    score (two-sided), the largest over the times, is held to the Bonferroni threshold at
    `family_level`. A spread off by a factor of 2 scores 11–14 against a threshold of 3.5 at 64
    seeds and K = M = 2 (tests/test_fluctuations.py; the score grows like √(S·P)). Away from
    saddles, where the linear noise holds; isotropic inputs, a plain run (not a protocol) of at
    least 2 seeds.
    """
    from scipy import special

    require_isotropic(setting)
    N = input_dimension(N)
    if sim.protocol or sim.Q.ndim != 4 or sim.Q.shape[0] < 2:
        raise ValueError("spread_verdict takes a plain run's trajectory with a seed axis of at least 2 seeds")
    start = sim.initial_state()
    ode = integrate(setting, start, np.asarray(sim.t))
    prediction = fluctuations(setting, mean_state(start), N, t=np.asarray(sim.t))
    flatten, _ = coordinates(setting.K, setting.M, setting.train_second_layer)
    on = jax.vmap(jax.vmap(flatten))
    deviation = np.asarray(on({"Q": sim.Q, "R": sim.R, "v": sim.v}) - on({"Q": ode.Q, "R": ode.R, "v": ode.v}))
    scores = []
    for k in range(1, len(sim.t)):
        values, vectors = np.linalg.eigh(prediction.covariance[k])
        kept = values > KEPT * values[-1]
        whitened = deviation[:, k] @ vectors[:, kept] / np.sqrt(values[kept])
        statistic, freedom = float(np.sum(whitened**2)), whitened.size
        lower = special.chdtr(freedom, statistic)  # the upper tail from its own function, accurate far out
        upper = special.chdtrc(freedom, statistic)
        scores.append(float(special.ndtri(lower)) if lower < 0.5 else -float(special.ndtri(upper)))
    comparisons = len(scores)
    threshold = -float(special.ndtri(family_level / (2 * comparisons)))
    return Agreement({"spread": max(abs(score) for score in scores)}, threshold, comparisons)
