"""Finite-N fluctuations of the order parameters about the ODE (docs/conventions.md, "Finite N:
fluctuations"): the diffusion matrix D(X) of one SGD step (`diffusion_matrix`), the linear-noise
covariance along a trajectory (`fluctuations`: dC/dt = J C + C Jᵀ + D, C(0) = 0) and at a stable
fixed point (`stationary_fluctuations`: J C + C Jᵀ + D = 0). Isotropic inputs.

X is the state in the independent coordinates of `nndyn.fixed_point` (Q's upper triangle
row-major, R, v when trained; `coordinate_names`). D = Cov[ζ]/B, ζ one sample's increment of X
printed by the generator from the same symbolic step as the flows
(`nndyn.generated.flows.INCREMENTS`), its moments over the fields u ~ N(0, Ω) and the label
noise ξ ~ N(0, 1) taken by a fixed rule (`rule`):

- ξ by 3-point Gauss–Hermite, exact (ζ ζᵀ is a polynomial of degree 4 in ξ);
- u = L z, L the Cholesky factor of Ω (+ JITTER·max diag Ω, for singular Ω such as a student
  equal to a teacher). Where both activations are polynomials of degree ≤ 2 (linear,
  quadratic) and K + M ≤ 6, z runs over a tensor Gauss–Hermite grid of GAUSS_HERMITE nodes per
  field, exact (ζ ζᵀ then has degree ≤ 12 in z, and 7 nodes integrate degree 13); otherwise over
  SOBOL_POINTS scrambled Sobol' points of a fixed seed mapped through Φ⁻¹ (quasi-Monte Carlo).
  The QMC error is measured in tests/test_fluctuations.py: the mean of ζ against the
  closed-form flows and D against a rule of 8× the points, within 2e-3 of the largest entry for
  erf and ReLU at K = M = 2, and D against single SGD steps. (The Gauss–Hermite grid converges
  far more slowly for erf — 20 % off at 7 nodes per field, 1 % at 15 — the factors g'(λ)²
  being Gaussians narrower than the weight.)
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import schema
from nndyn.core.blocks import joint_covariance
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.fixed_points import FixedPoint, coordinates
from nndyn.core.flows import readouts
from nndyn.core.kernels import Kernels, increment_table, step_table
from nndyn.core.setting import Setting
from nndyn.core.solver import ORDER_PARAMETERS, Flows, ODEOptions, resolve_options, solve_many
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory

SOBOL_POINTS = 1 << 15  # points of the QMC rule over the fields
GAUSS_HERMITE = 7  # nodes per field of the exact rule for polynomial activations
MAX_EXACT = 6  # the most fields (K + M) of the exact rule (7⁶ points)
JITTER = 1e-12


@functools.cache
def rule(fields: int, points: int = SOBOL_POINTS, exact: bool = False) -> dict[str, np.ndarray]:
    """The rule for moments over `fields` standard normal fields and the noise ξ (module
    docstring): "z" (P, fields), "xi" (P,) and "weight" (P,), the weights summing to 1. With
    `exact`, the tensor Gauss–Hermite grid (GAUSS_HERMITE nodes per field), else `points` Sobol'
    points (a power of two); each times the 3 nodes of ξ."""
    xi, xi_weight = np.polynomial.hermite_e.hermegauss(3)
    if exact:
        nodes, weights = np.polynomial.hermite_e.hermegauss(GAUSS_HERMITE)
        z = np.array(list(itertools.product(nodes, repeat=fields))).reshape(-1, fields)
        z_weight = np.prod(np.array(list(itertools.product(weights / weights.sum(), repeat=fields))), axis=-1)
    else:
        from scipy.special import ndtri
        from scipy.stats import qmc

        z = ndtri(qmc.Sobol(fields, scramble=True, rng=0).random(points))
        z_weight = np.full(points, 1.0 / points)
    return {"z": np.repeat(z, len(xi), axis=0), "xi": np.tile(xi, len(z)),
            "weight": np.outer(z_weight, xi_weight / xi_weight.sum()).reshape(-1)}


def polynomial(g: Callable) -> bool:
    """Whether the activation g is a polynomial of degree ≤ 2 (its values on 9 points in
    [−3, 3] fitted by a quadratic to round-off): the rule is then `exact`."""
    x = np.linspace(-3.0, 3.0, 9)
    values = np.asarray(g(jnp.asarray(x)), dtype=np.float64)
    residual = values - np.polyval(np.polyfit(x, values, 2), x)
    return bool(np.max(np.abs(residual)) <= 1e-10 * max(1.0, float(np.max(np.abs(values)))))


def coordinate_names(K: int, M: int, trained: bool) -> tuple[str, ...]:
    """The names of the coordinates of X in order, e.g. ("Q[0,0]", "Q[0,1]", …, "R[0,0]", …, "v[0]")."""
    return (*(f"Q[{i},{k}]" for i in range(K) for k in range(i, K)),
            *(f"R[{i},{n}]" for i in range(K) for n in range(M)), *((f"v[{i}]" for i in range(K)) if trained else ()))


def increments(kernels: Kernels, y: dict, args: dict, points: dict) -> dict:
    """ζ of every target at the rule's points: {"Q": (P, K, K), "R": (P, K, M), "v": (P, K)}.

    **Arguments:** y = {"Q", "R", "v"} and args as for `Kernels.rhs` (isotropic inputs); `points`,
    a `rule` as arrays. The step (Δ, F, G) is the simulator's (`nndyn.generated.flows.STEP`),
    evaluated on the fields u = L z."""
    K, M = y["R"].shape
    Omega = joint_covariance(y["Q"], y["R"], args["T"])
    jitter = JITTER * jnp.max(jnp.diag(Omega))
    fields = points["z"] @ jnp.linalg.cholesky(Omega + jitter * jnp.eye(K + M)).T
    lam, rho = fields[:, :K], fields[:, K:]
    g, g_prime = kernels.g(lam), kernels.g_prime(lam)
    readout = readouts(y["v"], args["v_star"], args.get("b"), args["kappa"], args["kappa_star"])
    values = {**args, "signal": jnp.concatenate([g, kernels.g_star(rho)], axis=-1) @ readout["a"],
              "xi": points["xi"], "g": g, "g_prime": g_prime, "e": readout["e"]}
    step = step_table()
    values["delta"] = _evaluate(step["delta"], values)[:, None]
    per_unit = {"F": _evaluate(step["F"], values), "G": _evaluate(step["G"], values), "u": fields}
    shapes = {"Q": "ik", "R": "in", "v": "i"}
    result = {}
    for target, (arguments, function) in increment_table().items():
        indices = shapes[target]
        broadcast = []
        for name in arguments:
            quantity, _, index = name.partition("_")
            if not index:  # a flow parameter
                broadcast.append(values[name])
                continue
            array = per_unit[quantity][:, K:] if index == "n" else per_unit[quantity][:, :K]
            others = tuple(1 + p for p, letter in enumerate(indices) if letter != index)
            broadcast.append(jnp.expand_dims(array, others))
        result[target] = jnp.broadcast_to(function(*broadcast), (len(fields), *(
            {"i": K, "k": K, "n": M}[letter] for letter in indices)))
    return result


def _evaluate(entry, values: dict):
    arguments, function = entry
    return function(*(values[name] for name in arguments))


def moments(kernels: Kernels, y: dict, args: dict, points: dict, trained: bool) -> tuple[jax.Array, jax.Array]:
    """(E[ζ] (P,), D (P, P)) in the coordinates of X: the mean of one sample's increment (the
    flows without the decays) and the diffusion matrix Cov[ζ]/B."""
    K, M = y["R"].shape
    flatten, _ = coordinates(K, M, trained)
    zeta = jax.vmap(flatten)(increments(kernels, y, args, points))
    mean = points["weight"] @ zeta
    centred = zeta - mean
    return mean, (centred.T * points["weight"]) @ centred / args["batch"]


def diffusion_matrix(setting: Setting, state: OrderParameters) -> np.ndarray:
    """D(X) (P, P) of `setting` at one `state` (Q (K, K), …, no leading dimensions), in the
    coordinates `coordinate_names`: N² times the covariance of one SGD step's increment of X
    (docs/conventions.md, "Finite N: fluctuations")."""
    _require_isotropic(setting)
    state.validate()
    if np.ndim(state.Q) != 2:
        raise ValueError(f"diffusion_matrix takes one state, Q of shape (K, K); got {np.shape(state.Q)}")
    args = setting.ode_args(jnp.asarray(state.T), jnp.asarray(state.v_star), state.b)
    y = {name: jnp.asarray(value) for name, value in state.as_ode_state().items()}
    return np.asarray(_moments(setting.activation, setting.teacher_activation, setting.train_second_layer)(
        y, args, _points(setting))[1])


@functools.cache
def _moments(activation: str, teacher: str, trained: bool) -> Callable:
    from nndyn.core.kernels import load

    kernels = load(activation, teacher)
    return jax.jit(lambda y, args, points: moments(kernels, y, args, points, trained))


def _points(setting: Setting) -> dict:
    """The rule for `setting` as arrays (module docstring)."""
    kernels = setting.kernels
    exact = setting.K + setting.M <= MAX_EXACT and polynomial(kernels.g) and polynomial(kernels.g_star)
    return {name: jnp.asarray(value) for name, value in rule(setting.K + setting.M, exact=exact).items()}


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
        from nndyn.core import fixed_points

        return (__file__, fixed_points.__file__)


@dataclass(frozen=True)
class Fluctuations:
    """The predicted fluctuations of the order parameters of SGD at input dimension N.

    **Fields:** `t` (n,) the times (one time, inf, for a stationary prediction); `N`; `K`, `M`,
    `trained`, the model's units and whether v is a coordinate; `covariance` (..., n, P, P),
    Cov[X_N(t) − X(t)] = C(t)/N in the coordinates `names` (P of them), leading dimensions as
    the trajectory's; `eg_var` (..., n), the variance of ε_g,
    ∇ε_gᵀ C ∇ε_g/N; `names`, the coordinates' names (`coordinate_names`); `ode`, the ODE's
    `Trajectory` the covariance is about (the mean), or None for a stationary prediction.
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


def _require_isotropic(setting: Setting) -> None:
    if setting.structured:
        raise ValueError("the fluctuations are derived for isotropic inputs: the diffusion matrix of structured "
                         "inputs (per-level fields) is not implemented")


def _check_N(N) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise schema.ParameterError("N", f"N must be an integer ≥ 1 (the input dimension), got {N!r}")
    return int(N)


def fluctuations(setting: Setting, trajectory: Trajectory | OrderParameters, N: int, t=None,
                 **options) -> Fluctuations:
    """The linear-noise prediction of SGD's fluctuations at input dimension N about the ODE
    (docs/conventions.md): C(t) from dC/dt = J C + C Jᵀ + D(X(t)), C(t[0]) = 0, integrated
    beside the ODE's X(t) by the one solve (`nndyn.core.solver`).

    **Arguments:** `trajectory`, a `Trajectory` (e.g. SGD's: the prediction is about the ODE
    started at each seed's own initial order parameters, `Trajectory.initial_state()`, at the
    trajectory's times) or the `OrderParameters` to start from, with `t` (n,) the times;
    `options`, fields of `ODEOptions` (method "adaptive" or "implicit").

    **Returns:** `Fluctuations`, with the leading dimensions of the initial state.
    """
    _require_isotropic(setting)
    N = _check_N(N)
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
    args = {**setting.ode_args(init.T, init.v_star, init.b), "rule": _points(setting)}
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

    _require_isotropic(setting)
    N = _check_N(N)
    if not isinstance(point, FixedPoint) or not isinstance(point.state, OrderParameters):
        raise ValueError("point: a FixedPoint of the full flows (nndyn.fixed_point from OrderParameters)")
    if point.kind != "stable":
        raise ValueError(f"this fixed point is {point.kind}: a stationary spread exists only at a stable one")
    state = point.state
    names = coordinate_names(setting.K, setting.M, setting.train_second_layer)
    args = setting.ode_args(jnp.asarray(state.T), jnp.asarray(state.v_star), state.b)
    y = {name: jnp.asarray(value) for name, value in state.as_ode_state().items()}
    D = diffusion_matrix(setting, state)
    J = _jacobian(setting)(y, args)
    C = solve_continuous_lyapunov(np.asarray(J), -D)
    C = 0.5 * (C + C.T)
    gradient = np.asarray(point.eg_gradient)
    return Fluctuations(np.array([np.inf]), N, setting.K, setting.M, setting.train_second_layer, C[None] / N,
                        np.array([gradient @ C @ gradient / N]), names)


@functools.cache
def _jacobian_of(activation: str, teacher: str, trained: bool) -> Callable:
    from nndyn.core.kernels import load

    kernels = load(activation, teacher)

    def jacobian(y, args):
        K, M = y["R"].shape
        flatten, unflatten = coordinates(K, M, trained)
        return jax.jacfwd(lambda x: flatten(kernels.rhs(0.0, unflatten(x, y["v"]), args)))(flatten(y))

    return jax.jit(jacobian)


def _jacobian(setting: Setting) -> Callable:
    return _jacobian_of(setting.activation, setting.teacher_activation, setting.train_second_layer)

