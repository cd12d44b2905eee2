"""The diffusion matrix D(X) of one SGD step (docs/conventions.md, "Finite N: fluctuations"):
N² times the covariance of one step's increment of the order parameters, the noise that
`nndyn.core.fluctuations` (linear noise) and `nndyn.core.sde` (sample paths) add to the flows.
Isotropic inputs.

X is the state in the independent coordinates of `nndyn.fixed_point` (Q's upper triangle
row-major, R, v when trained; `coordinate_names`). D = Cov[ζ]/B, ζ one sample's increment of X
printed by the generator from the same symbolic step as the flows
(`nndyn.generated.flows.INCREMENTS`), its moments over the fields u ~ N(0, Ω) and the label
noise ξ ~ N(0, 1) taken by a fixed rule (`rule`):

- ξ by 3-point Gauss–Hermite, exact (ζ ζᵀ is a polynomial of degree 4 in ξ); at σ = 0 the one
  node ξ = 0 (no increment depends on ξ then: a third of the cost);
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

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import schema
from nndyn.core.blocks import joint_covariance
from nndyn.core.fixed_points import coordinates
from nndyn.core.flows import readouts
from nndyn.core.kernels import Kernels, increment_table, load, step_table
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters

SOBOL_POINTS = 1 << 15  # points of the QMC rule over the fields
GAUSS_HERMITE = 7  # nodes per field of the exact rule for polynomial activations
MAX_EXACT = 6  # the most fields (K + M) of the exact rule (7⁶ points)
JITTER = 1e-12


@functools.cache
def rule(fields: int, points: int = SOBOL_POINTS, exact: bool = False, noise: bool = True) -> dict[str, np.ndarray]:
    """The rule for moments over `fields` standard normal fields and the noise ξ (module
    docstring): "z" (P, fields), "xi" (P,) and "weight" (P,), the weights summing to 1. With
    `exact`, the tensor Gauss–Hermite grid (GAUSS_HERMITE nodes per field), else `points` Sobol'
    points (a power of two); each times the 3 nodes of ξ, or only ξ = 0 without `noise` (σ = 0,
    where no increment depends on ξ)."""
    xi, xi_weight = np.polynomial.hermite_e.hermegauss(3) if noise else (np.zeros(1), np.ones(1))
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
            if quantity not in per_unit or index not in "ikn" or len(index) != 1:  # a flow parameter
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
    require_isotropic(setting)
    state.validate()
    if np.ndim(state.Q) != 2:
        raise ValueError(f"diffusion_matrix takes one state, Q of shape (K, K); got {np.shape(state.Q)}")
    args = setting.ode_args(jnp.asarray(state.T), jnp.asarray(state.v_star), state.b)
    y = {name: jnp.asarray(value) for name, value in state.as_ode_state().items()}
    return np.asarray(_moments(setting.activation, setting.teacher_activation, setting.train_second_layer)(
        y, args, rule_of(setting))[1])


@functools.cache
def _moments(activation: str, teacher: str, trained: bool) -> Callable:
    kernels = load(activation, teacher)
    return jax.jit(lambda y, args, points: moments(kernels, y, args, points, trained))


def rule_of(setting: Setting, points: int = SOBOL_POINTS) -> dict:
    """The rule for `setting` as arrays (module docstring): exact for polynomial activations of
    degree ≤ 2 and K + M ≤ MAX_EXACT, else `points` Sobol' points (`ParameterError` naming
    points unless a power of two ≥ 2^8); ξ's nodes only where the label noise σ > 0."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 256 or points & (points - 1):
        raise schema.ParameterError("points", f"points must be a power of two ≥ 256 (Sobol' points), got {points!r}")
    kernels = setting.kernels
    exact = setting.K + setting.M <= MAX_EXACT and polynomial(kernels.g) and polynomial(kernels.g_star)
    arrays = rule(setting.K + setting.M, int(points), exact, setting.sigma != 0)
    return {name: jnp.asarray(value) for name, value in arrays.items()}


def require_isotropic(setting: Setting) -> None:
    """Raise ValueError for structured inputs, whose per-level diffusion matrix is not derived."""
    if setting.structured:
        raise ValueError("the fluctuations are derived for isotropic inputs: the diffusion matrix of structured "
                         "inputs (per-level fields) is not implemented")


def input_dimension(N) -> int:
    """N as an int, or `ParameterError` naming N when it is no integer ≥ 1."""
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise schema.ParameterError("N", f"N must be an integer ≥ 1 (the input dimension), got {N!r}")
    return int(N)
