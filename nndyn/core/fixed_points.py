"""Fixed points of the flows and their stability, from the generated vector field.

The flows are written in their independent coordinates: the upper triangle of the symmetric Q
(row-major), R, and v when the second layer is trained (T and v* are constant); with structured
inputs, the upper triangle of every level's Q^ℓ, then every level's R^ℓ (level by level), and v. Newton's method
on the vector field, with its Jacobian from `jax.jacfwd` and steps halved until the residual
falls, finds a fixed point near a start; the Jacobian's eigenvalues there say whether it is
stable (every real part negative), a saddle (some positive) or marginal (the largest within
`tolerance` of zero). For a realizable setting (K = M, student equal to the teacher) the perfect-
learning point Q = R = T, v = v* is a fixed point at every η when σ = 0; `learning_rate_threshold`
finds η_max, where it loses stability, by bisection on the largest real part.

From a `SymmetricState`, the same on Saad & Solla's symmetric reduction (`nndyn.core.symmetric`),
in the coordinates Q, C, R, S (and v when trained), for any K: its eigenvalues are those of
perturbations within the ansatz.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from nndyn.core import cache, spectrum, symmetric
from nndyn.core.kernels import load
from nndyn.core.setting import Setting
from nndyn.core.solver import FULL, compiled
from nndyn.core.state import OrderParameters
from nndyn.core.symmetric import SymmetricState


class FixedPointError(ValueError):
    """Newton's method did not converge; the message gives the residual it reached."""


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point of the flows and its linear stability.

    **Fields:** `state`, the `OrderParameters` there (a `SymmetricState` for the symmetric
    reduction's); `eg`, its ε_g; `residual`,
    the largest |flow| there; `iterations`, Newton's steps; `eigenvalues` (P,), the Jacobian's
    (complex, sorted by real part, largest first) in the coordinates of the module docstring;
    `eigenvectors` (P, P), column j the eigenvector of eigenvalue j; `tolerance`, the real part
    below which an eigenvalue counts as zero; `eg_gradient` (P,), ∇ε_g there in the same
    coordinates (None where not computed).
    """

    state: OrderParameters | SymmetricState
    eg: float
    residual: float
    iterations: int
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    tolerance: float
    eg_gradient: np.ndarray | None = None

    @property
    def unstable_directions(self) -> int:
        """The number of eigenvalues with real part above `tolerance`."""
        return int(np.sum(np.real(self.eigenvalues) > self.tolerance))

    @property
    def kind(self) -> str:
        """"stable", "saddle" (unstable directions and stable ones), "unstable" or "marginal"."""
        largest = float(np.real(self.eigenvalues)[0])
        if abs(largest) <= self.tolerance:
            return "marginal"
        if largest < 0:
            return "stable"
        return "unstable" if np.all(np.real(self.eigenvalues) > self.tolerance) else "saddle"

    @property
    def rate(self) -> float:
        """The asymptotic rate at which the order parameters approach this point, −max Re λ
        (positive when stable)."""
        return -float(np.real(self.eigenvalues)[0])

    @property
    def visible(self) -> np.ndarray:
        """Per eigenvalue (P,), whether its mode enters ε_g at first order: its eigenvector u has
        a component along ∇ε_g, |∇ε_g·u| > VISIBLE·|∇ε_g||u| (a mode ε_g is blind to at first
        order, e.g. a rotation of the students within the teachers' space at K = 2, has a
        component of round-off, ~1e-16, there). Raises ValueError where ∇ε_g is not finite."""
        if self.eg_gradient is None:
            raise ValueError("this fixed point has no ε_g gradient")
        gradient = np.asarray(self.eg_gradient)
        if not np.all(np.isfinite(gradient)):  # NaN would count every mode invisible, silently
            raise ValueError(f"ε_g's gradient at this fixed point is not finite ({np.sum(~np.isfinite(gradient))} "
                             "components): which modes ε_g sees is undefined")
        size = np.linalg.norm(gradient) * np.linalg.norm(self.eigenvectors, axis=0)
        return np.abs(gradient @ self.eigenvectors) > VISIBLE * size

    @property
    def eg_rate(self) -> float:
        """The asymptotic rate at which ε_g approaches its value here (a stable point):
        ε_g(t) − ε_g* ∝ exp(−eg_rate·t). A mode of eigenvalue λ enters ε_g at |Re λ| when it is
        `visible`, and every mode at second order, at 2|Re λ|: the rate is the smallest of those,
        min(min over visible modes of |Re λ|, 2 min over all modes of |Re λ|). It differs from
        `rate` where the slowest mode is invisible (then up to twice as fast)."""
        decay = -np.real(self.eigenvalues)
        return float(min(np.min(decay[self.visible], initial=np.inf), 2 * np.min(decay)))

    @property
    def escape_rate(self) -> float:
        """λ_u = max Re λ: the rate at which a saddle (a plateau) is left along its most unstable
        direction (positive for a saddle; −`rate`)."""
        return float(np.real(self.eigenvalues)[0])

    def escape_time(self, distance: float) -> float:
        """The leading-order time to leave a saddle from `distance` along its most unstable
        direction, ln(1/distance)/λ_u (λ_u = max Re λ > 0): a plateau's length for an initial
        asymmetry `distance`, up to an O(1/λ_u) constant that does not depend on it."""
        growth = self.escape_rate
        if growth <= self.tolerance:
            raise ValueError(f"this fixed point is {self.kind}: no direction leads away from it")
        return float(np.log(1 / distance) / growth)


def coordinates(K: int, M: int, trained: bool, levels: int = 0):
    """(flatten, unflatten) between {"Q", "R", "v"} and the independent coordinates (module
    docstring): flatten(y) -> x (P,), unflatten(x, v) -> y, taking v from `v` where it is no
    coordinate; with `levels` > 0, Q (levels, K, K) and R (levels, K, M) per level of a
    structured input."""
    upper = np.triu_indices(K)
    count = max(levels, 1)
    lead = (levels,) if levels else ()

    def flatten(y):
        parts = [y["Q"][..., upper[0], upper[1]].reshape(-1), y["R"].reshape(-1)]
        return jnp.concatenate(parts + ([y["v"]] if trained else []))

    def unflatten(x, v):
        size = count * len(upper[0])
        Q = jnp.zeros(lead + (K, K), x.dtype).at[..., upper[0], upper[1]].set(x[:size].reshape(lead + (-1,)))
        Q = Q + jnp.swapaxes(jnp.triu(Q, 1), -1, -2)
        R = x[size:size + count * K * M].reshape(lead + (K, M))
        return {"Q": Q, "R": R, "v": x[size + count * K * M:] if trained else v}

    return jax.jit(flatten), jax.jit(unflatten)  # one program each where called outside a jitted one


def _field(setting: Setting):
    """The jitted vector field, its Jacobian, (flatten, unflatten), ε_g's gradient and ε_g, in the
    independent coordinates of `setting`
    (compiled once per shape and model: η, σ, B, κ, λ enter as arguments)."""
    return _compiled_field(setting.activation, setting.teacher_activation, setting.K, setting.M,
                           setting.train_second_layer, setting.levels if setting.structured else 0)


@functools.cache
def _compiled_field(activation: str, teacher: str, K: int, M: int, trained: bool, levels: int = 0):
    flatten, unflatten = coordinates(K, M, trained, levels)
    kernels = load(activation, teacher)
    rhs, _ = compiled(FULL, kernels)  # the solves' trace of the flows, reused

    def field(x, v, args):
        return flatten(rhs(0.0, unflatten(x, v), args))

    def eg(x, v, args):
        return kernels.eg(unflatten(x, v), args)

    sources = (__file__, *kernels.sources)

    def kept(function, name: str):  # exported through the persistent cache: a fresh process skips tracing it
        static = (name, activation, teacher, K, M, trained, levels)
        return lambda x, v, args: cache.call(function, (x, v, args), static=static, sources=sources)

    return (kept(field, "field"), kept(jax.jacfwd(field), "jacobian"), flatten, unflatten,
            kept(jax.grad(eg), "gradient"), kept(eg, "eg"))


def fixed_point(setting: Setting, start: OrderParameters | SymmetricState, *, tolerance: float = 1e-12,
                max_iterations: int = 100, eigen_tolerance: float = 1e-9) -> FixedPoint:
    """The fixed point of the flows of `setting` that Newton's method reaches from `start`.

    **Arguments:** `start`, the `OrderParameters` to start from (T and v* are kept), or a
    `SymmetricState` for the fixed points of the symmetric reduction (any K; T = I, v* = 1;
    its eigenvalues are those within the ansatz, in the coordinates Q, C, R, S[, v]);
    `tolerance`, the largest |flow| accepted; `max_iterations`, Newton's most steps;
    `eigen_tolerance`, the real part below which an eigenvalue counts as zero.

    **Returns:** a `FixedPoint` (its `state` of the type of `start`). Raises `FixedPointError`
    naming the residual when Newton's method does not converge (a singular Jacobian, or no
    fixed point nearby), and naming the units where the flows have no Jacobian (a point where a
    student unit coincides with a teacher or another student, for an activation whose
    derivative is a step, e.g. ReLU's perfect learning: its stability is then not linear).
    """
    if isinstance(start, SymmetricState):
        field, jacobian, x, finish, gradient = _symmetric_problem(setting, start)
    else:
        field, jacobian, x, finish, gradient = _full_problem(setting, start)
    x, flow, iterations = _newton(field, jacobian, x, tolerance, max_iterations)
    state, eg = finish(x)
    _require_differentiable(setting, state.expand(2) if isinstance(state, SymmetricState) else state)
    _require_a_state(state, setting)
    values, vectors = np.linalg.eig(np.asarray(jacobian(x)))
    order = np.argsort(-np.real(values), kind="stable")
    return FixedPoint(state, float(eg), float(np.max(np.abs(flow))), iterations, values[order], vectors[:, order],
                      eigen_tolerance, np.asarray(gradient(x)))


#: The antisymmetric part of a start's Q accepted (relative to its largest entry) and removed:
#: an integrated trajectory's round-off (integrate keeps Q symmetric, older runs did not).
ASYMMETRY = 1e-6


def _full_problem(setting: Setting, start: OrderParameters):
    """(field(x), jacobian(x), x at `start`, finish(x) -> (state, ε_g)) in the full coordinates."""
    if np.ndim(start.Q) != 2:
        raise ValueError(f"fixed_point starts from one state, Q of shape (K, K); got Q of shape {np.shape(start.Q)} "
                         "(pick one seed's state)")
    Q = np.asarray(start.Q, dtype=np.float64)
    if np.all(np.isfinite(Q)) and np.max(np.abs(Q - Q.T)) <= ASYMMETRY * max(1.0, float(np.max(np.abs(Q)))):
        start = dataclasses.replace(start, Q=jnp.asarray(0.5 * (Q + Q.T)))
    if start.Q_levels is not None:
        Q_levels = np.asarray(start.Q_levels, dtype=np.float64)
        start = dataclasses.replace(start, Q_levels=jnp.asarray(0.5 * (Q_levels + np.swapaxes(Q_levels, -1, -2))))
    start.validate()
    if (start.K, start.M) != (setting.K, setting.M):
        raise ValueError(f"start has K={start.K}, M={start.M} but the setting has K={setting.K}, M={setting.M}")
    start.require_levels(setting.levels if setting.structured else None)
    field, jacobian, flatten, unflatten, gradient, eg = _field(setting)
    T = jnp.asarray(start.T_levels if setting.structured else start.T)
    args = setting.ode_args(T, jnp.asarray(start.v_star), start.b)
    v = jnp.asarray(start.v)

    def finish(x):
        y = unflatten(x, v)
        if setting.structured:
            state = OrderParameters(y["Q"].sum(0), y["R"].sum(0), jnp.asarray(start.T), y["v"],
                                    jnp.asarray(start.v_star), start.b, y["Q"], y["R"], T)
        else:
            state = OrderParameters(y["Q"], y["R"], T, y["v"], jnp.asarray(start.v_star), start.b)
        return state, eg(x, v, args)

    return (functools.partial(field, v=v, args=args), functools.partial(jacobian, v=v, args=args),
            flatten(start.as_ode_state()), finish, functools.partial(gradient, v=v, args=args))


def _symmetric_problem(setting: Setting, start: SymmetricState):
    """Like `_full_problem`, in the coordinates of the symmetric reduction."""
    field, jacobian, flatten, unflatten, gradient, eg = _symmetric_field(setting)
    args = symmetric.arguments(setting)
    v = jnp.asarray(start.v, dtype=jnp.float64)

    def finish(x):
        return unflatten(x, v), eg(x, v, args)

    x = flatten(start.as_arrays())
    return (functools.partial(field, v=v, args=args), functools.partial(jacobian, v=v, args=args), x, finish,
            functools.partial(gradient, v=v, args=args))


#: 1 − |ρ| at or below which two units count as coinciding (`_require_differentiable`).
COINCIDENCE = 1e-8


def _require_differentiable(setting: Setting, state: OrderParameters) -> None:
    """Raise `FixedPointError` where the flows of `setting` have no Jacobian at `state`: an
    activation whose derivative is a step (`Kernels.smooth` false) where a student unit
    coincides (1 − |ρ| ≤ COINCIDENCE) with a teacher or another student unit."""
    if setting.kernels.smooth:
        return
    Q, R, T = (np.asarray(getattr(state, name), dtype=np.float64) for name in ("Q", "R", "T"))
    if setting.input_spectrum is not None and state.Q_levels is not None:  # the fields' covariance Σ_ℓ ρ_ℓ Ω^ℓ
        rho = spectrum.eigenvalues(setting.input_spectrum)
        Q, R, T = (np.tensordot(rho, np.asarray(getattr(state, f"{name}_levels")), axes=1) for name in "QRT")
    K = Q.shape[0]
    Omega = np.block([[Q, R], [R.T, T]])
    scale = np.sqrt(np.maximum(np.diag(Omega), np.finfo(np.float64).tiny))
    gap = 1 - np.abs(Omega / np.outer(scale, scale))
    units = [f"student unit {i}" for i in range(K)] + [f"teacher unit {n}" for n in range(R.shape[1])]
    for p in range(K):
        for q in range(p + 1, len(units)):
            if gap[p, q] <= COINCIDENCE:
                raise FixedPointError(
                    f"the flows of this model (activation {setting.activation}, teacher_activation "
                    f"{setting.teacher_activation or setting.activation}) are not differentiable where two units "
                    f"coincide, as {units[p]} and {units[q]} do at this fixed point (1 - |ρ| = {gap[p, q]:.1g}): "
                    "its Jacobian, and the linear stability it would decide, do not exist; integrate from nearby "
                    "to judge it")


def _require_a_state(state, setting: Setting) -> None:
    """Raise `FixedPointError` where the point Newton's method reached is no state of any network:
    its joint covariance Ω = [[Q, R], [Rᵀ, T]] is not positive semi-definite (a zero of the flows
    outside the cone they flow in, which SGD never visits). A symmetric state is checked for
    K up to 64."""
    if isinstance(state, SymmetricState):
        if setting.K > 64:
            return
        state = state.expand(setting.K)
    try:
        state.validate(tolerance=1e-9)
    except ValueError as error:
        raise FixedPointError(f"Newton's method reached a zero of the flows that is no network's state: "
                              f"{error}") from None


#: The relative component along ∇ε_g above which a mode counts as entering ε_g at first order
#: (`FixedPoint.visible`).
VISIBLE = 1e-8


#: Newton's steps below this relative size are round-off: the iteration stops there.
ROUND_OFF = 1e-14


def _newton(field, jacobian, x, tolerance: float, max_iterations: int):
    """Newton's method on field(x) = 0 from x, each step halved until the Euclidean residual
    (which Newton's step lowers) falls, until the largest |field| is at most `tolerance` or the
    step is round-off (`ROUND_OFF` relative to x): (x, field(x), steps taken), or a
    `FixedPointError`."""
    flow = np.asarray(field(x))
    iterations = 0
    while np.max(np.abs(flow)) > tolerance:
        if iterations == max_iterations:
            raise FixedPointError(f"Newton's method did not converge in {max_iterations} steps: the largest "
                                  f"|flow| is {np.max(np.abs(flow)):.3g} (tolerance {tolerance:g})")
        matrix = np.asarray(jacobian(x))
        if not np.all(np.isfinite(matrix)):
            raise FixedPointError(f"the Jacobian is not finite after {iterations} of Newton's steps (the largest "
                                  f"|flow| is {np.max(np.abs(flow)):.3g}): the flows are not differentiable there, "
                                  "as where units coincide for an activation whose derivative is a step (ReLU)")
        step = np.linalg.lstsq(matrix, -flow, rcond=None)[0]
        if np.linalg.norm(step) <= ROUND_OFF * np.linalg.norm(x):
            break  # at round-off: the flow cannot be resolved further
        scale = 1.0
        while scale > 1e-10:
            trial = x + scale * step
            trial_flow = np.asarray(field(trial))
            if np.all(np.isfinite(trial_flow)) and np.linalg.norm(trial_flow) < np.linalg.norm(flow):
                break
            scale /= 2
        else:
            smallest = np.linalg.svd(matrix, compute_uv=False)[-1]
            raise FixedPointError(f"Newton's method stalled after {iterations} steps: the largest |flow| is "
                                  f"{np.max(np.abs(flow)):.3g} and no step along Newton's direction lowers it (the "
                                  f"Jacobian's smallest singular value is {smallest:.2g}: near zero, the fixed points "
                                  "may form a continuum, e.g. a student unit whose v vanishes)")
        x, flow, iterations = trial, trial_flow, iterations + 1
    return x, flow, iterations


def _symmetric_field(setting: Setting):
    """Like `_field`, for the symmetric reduction: coordinates Q, C, R, S, and v when trained."""
    return _compiled_symmetric_field(setting.activation, setting.teacher_activation, setting.train_second_layer)


@functools.cache
def _compiled_symmetric_field(activation: str, teacher: str, trained: bool):
    kernels = load(activation, teacher)
    rhs = symmetric.field(kernels)
    size = 5 if trained else 4

    def flatten(y):
        return jnp.stack(tuple(y)[:size])

    def unflatten(x, v):
        return SymmetricState(x[0], x[1], x[2], x[3], x[4] if trained else v)

    def field(x, v, args):
        return flatten(rhs(0.0, unflatten(x, v), args))

    def eg(x, v, args):
        return symmetric.evaluate(kernels, ("eg",), unflatten(x, v), args)[0]

    return jax.jit(field), jax.jit(jax.jacfwd(field)), flatten, unflatten, jax.jit(jax.grad(eg)), jax.jit(eg)


def perfect_learning(setting: Setting, T=None, v_star=None) -> OrderParameters:
    """The perfect-learning state of a realizable setting (K = M): Q = R = T, v = v*
    (T defaults to the identity, v* to ones); with structured inputs, per level
    Q^ℓ = R^ℓ = T^ℓ = τ_ℓ f_ℓ T (the teacher spread over the levels as its draw is: τ_ℓ the
    `teacher_spectrum`, default 1)."""
    if setting.K != setting.M:
        raise ValueError(f"perfect learning needs a realizable setting with K = M; this one has K={setting.K}, "
                         f"M={setting.M}")
    T = np.eye(setting.M) if T is None else np.asarray(T, dtype=np.float64)
    v_star = np.ones(setting.M) if v_star is None else np.asarray(v_star, dtype=np.float64)
    levels = {}
    if setting.input_spectrum is not None:
        weight = spectrum.fractions(setting.input_spectrum) * np.asarray(setting.teacher_spectrum or 1.0)
        level = jnp.asarray(weight[:, None, None] * T)
        levels = {"Q_levels": level, "R_levels": level, "T_levels": level}
    return OrderParameters(jnp.asarray(T), jnp.asarray(T), jnp.asarray(T), jnp.asarray(v_star), jnp.asarray(v_star),
                           **levels)


#: Perfect learning on the symmetric ansatz.
SYMMETRIC_PERFECT_LEARNING = SymmetricState(1.0, 0.0, 1.0, 0.0, 1.0)


def perfect_learning_point(setting: Setting, lr: float, T=None, v_star=None, symmetric: bool = False) -> FixedPoint:
    """The fixed point of perfect learning for `setting` with η = η_v = `lr` (within the
    symmetric ansatz when `symmetric`; T and v* then must be None)."""
    changed = setting.replace(lr=lr, lr_v=lr)
    if symmetric:
        if T is not None or v_star is not None:
            raise ValueError("the symmetric reduction has T = I and v* = 1: give neither T nor v_star")
        return fixed_point(changed, SYMMETRIC_PERFECT_LEARNING)
    return fixed_point(changed, perfect_learning(changed, T, v_star))


def largest_real_part(setting: Setting, lr: float, T=None, v_star=None, symmetric: bool = False) -> float:
    """max Re λ of the Jacobian at perfect learning for `setting` with η = η_v = `lr` (within
    the symmetric ansatz when `symmetric`; T and v* then must be None)."""
    return -perfect_learning_point(setting, lr, T, v_star, symmetric).rate


#: What `optimal_learning_rate` makes fastest: ε_g's approach (`FixedPoint.eg_rate`) or the
#: order parameters' (`FixedPoint.rate`).
RATES = {"eg": lambda point: point.eg_rate, "state": lambda point: point.rate}


def optimal_learning_rate(setting: Setting, T=None, v_star=None, symmetric: bool = False,
                          of: str = "eg") -> tuple[float, float]:
    """η_opt and its rate: the η (η_v = η) in (0, η_max) at which perfect learning of the
    realizable `setting` is approached fastest (Brent's bounded method, to 1e-8 relative); within
    the ansatz when `symmetric`. `of` says what approaches: "eg", the generalisation error (the
    learning rate of fastest learning, `FixedPoint.eg_rate`), or "state", the order parameters
    (−max Re λ, `FixedPoint.rate`), whose slowest mode ε_g may see only at second order."""
    from scipy import optimize  # imported here: it costs a second at `import nndyn`

    if of not in RATES:
        raise ValueError(f"of must be one of {', '.join(map(repr, RATES))}, got {of!r}")
    eta_max = learning_rate_threshold(setting, T, v_star, relative_tolerance=1e-8, symmetric=symmetric)
    found = optimize.minimize_scalar(
        lambda eta: -RATES[of](perfect_learning_point(setting, eta, T, v_star, symmetric)),
        bounds=(0.0, eta_max), method="bounded", options={"xatol": 1e-8 * eta_max})
    return float(found.x), -float(found.fun)


def learning_rate_threshold(setting: Setting, T: ArrayLike | None = None, v_star: ArrayLike | None = None, *,
                            relative_tolerance: float = 1e-12, symmetric: bool = False) -> float:
    """η_max: the largest η (with η_v = η) at which the perfect-learning fixed point of the
    realizable `setting` (K = M, σ = 0) is linearly stable, by bisection on the largest real
    part of the Jacobian's eigenvalues to `relative_tolerance`.

    With `symmetric`, the Jacobian is the symmetric reduction's (`nndyn.core.symmetric`, T = I,
    v* = 1), which costs the same at any K: stability against perturbations within the ansatz
    only, so an upper bound of the full η_max (the two agree where the ansatz's mode is the
    first to lose stability; docs/fixed-points.md measures where)."""
    if setting.sigma != 0:
        raise ValueError(f"η_max is defined here for σ = 0 (perfect learning is no fixed point with label noise); "
                         f"got sigma={setting.sigma}")
    low, high = setting.lr, setting.lr
    while largest_real_part(setting, low, T, v_star, symmetric) >= 0:
        low /= 2
        if low < 1e-8:
            raise ValueError("perfect learning is not stable at any learning rate tried (down to 1e-8)")
    while largest_real_part(setting, high, T, v_star, symmetric) < 0:
        high *= 2
        if high > 1e8:
            raise ValueError("perfect learning is stable at every learning rate tried (up to 1e8)")
    while high - low > relative_tolerance * high:
        middle = (low + high) / 2
        if largest_real_part(setting, middle, T, v_star, symmetric) < 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2
