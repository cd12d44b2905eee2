"""Saad & Solla's symmetric reduction: the flows of a realizable setting on its symmetric
subspace, a handful of scalars whatever K is.

The ansatz (docs/conventions.md, "Symmetric reduction"): K = M, T = I, and

    Q_jj = Q,  Q_jk = C,  R_jj = R,  R_jk = S  (j ≠ k),  v_j = v,  v*_j = v*.

The flows keep it, and those of Q, C, R, S, v close. nndyn.derive.symmetric derives them with K
as a symbol, each a sum of polynomial-in-K coefficients times integrals on blocks of (Q, C, R, S,
1, 0); the generator writes the table `nndyn.generated.symmetric.TERMS`, which this module
evaluates on a model's integrals. One evaluation costs the same at K = 2 and K = 10⁶ (a few
dozen closed forms), so the reduction integrates, and finds the fixed points of, students far
wider than the full flows can (those cost O(K⁴)). It describes the symmetric subspace only:
perturbations that break the ansatz (see `nndyn.core.fixed_points`) are not in it.

Shapes: every field of a `SymmetricState` is a scalar, or an array of one shape (e.g. (T,)
along a trajectory).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from nndyn.core.errors import DivergenceError, Status
from nndyn.core.flows import is_zero
from nndyn.core.kernels import Kernels
from nndyn.core.setting import Setting
from nndyn.core.solver import Flows, ODEOptions, solve_many
from nndyn.core.state import OrderParameters

#: The reduced flow targets, in the order of `SymmetricState`.
TARGETS = ("Q", "C", "R", "S", "v")


@dataclass(frozen=True)
class Term:
    """One term of the reduction: ``coefficient(*arguments) * integral(entries)``, or with
    `integral` None ``coefficient(*arguments)`` (a state term, e.g. the weight decay).

    **Fields:** `target` ("Q", "C", "R", "S", "v" or "eg"); `arguments`, the names of the state
    variables and parameters the coefficient takes, in order; `coefficient`, a function of them;
    `integral` ("I2", "J2", "I3", "I4" or None) of `signature` (a letter per slot: "s"
    student, "t" teacher, "-" the u slot); `entries`, its block's entries c_pq (p ≤ q,
    row-major), each a state variable's name or "1", "0".
    """

    target: str
    arguments: tuple[str, ...]
    coefficient: Callable
    integral: str | None
    signature: str
    entries: tuple[str, ...]


class SymmetricState(NamedTuple):
    """A state on the ansatz: Q = Q_jj, C = Q_jk, R = R_jj, S = R_jk (j ≠ k), v = v_j.

    A pytree (Diffrax integrates it as the state). `of` restricts full `OrderParameters` to it,
    `expand` builds them back.
    """

    Q: ArrayLike
    C: ArrayLike
    R: ArrayLike
    S: ArrayLike
    v: ArrayLike

    @classmethod
    def of(cls, state: OrderParameters, tolerance: float = 1e-12) -> "SymmetricState":
        """The ansatz values of a full state, which must lie on it (K = M, T = I, v* = 1, the
        diagonal and off-diagonal entries of Q and R each equal, v equal, to `tolerance`)."""
        Q, R, T, v = (np.asarray(getattr(state, name), dtype=np.float64) for name in ("Q", "R", "T", "v"))
        K = Q.shape[-1]
        if Q.ndim != 2 or R.shape != (K, K):
            raise ValueError(f"the symmetric reduction needs one state with K = M; got Q {Q.shape}, R {R.shape}")
        off = ~np.eye(K, dtype=bool)
        parts = {"T = I": np.abs(T - np.eye(K)), "v* = 1": np.abs(np.asarray(state.v_star) - 1),
                 "Q_jj equal": np.abs(np.diag(Q) - Q[0, 0]), "R_jj equal": np.abs(np.diag(R) - R[0, 0]),
                 "Q_jk equal": np.abs(Q[off] - (Q[off][0] if K > 1 else 0)),
                 "R_jk equal": np.abs(R[off] - (R[off][0] if K > 1 else 0)), "v_j equal": np.abs(v - v[0])}
        broken = [name for name, deviation in parts.items() if deviation.size and deviation.max() > tolerance]
        if broken:
            raise ValueError(f"the state is not on the symmetric ansatz: {', '.join(broken)} fails by more than "
                             f"{tolerance:g}")
        return cls(Q[0, 0], Q[0, 1] if K > 1 else 0.0, R[0, 0], R[0, 1] if K > 1 else 0.0, v[0])

    def as_arrays(self) -> "SymmetricState":
        """This state with every field a float64 JAX array."""
        return SymmetricState(*(jnp.asarray(value, dtype=jnp.float64) for value in self))

    def expand(self, K: int) -> OrderParameters:
        """The full `OrderParameters` of this state for K = M units (T = I, v* = 1)."""
        identity = np.eye(K)
        diagonal, off, aligned, other = (np.asarray(value, dtype=np.float64) for value in self[:4])
        Q = off + (diagonal - off) * identity
        R = other + (aligned - other) * identity
        return OrderParameters(jnp.asarray(Q), jnp.asarray(R), jnp.asarray(identity),
                               jnp.full(K, self.v, dtype=jnp.float64), jnp.ones(K))


@functools.cache
def _table() -> ModuleType:
    """The generated reduction, imported on first use (the generator imports nndyn before it
    exists)."""
    return importlib.import_module("nndyn.generated.symmetric")


def check(setting: Setting) -> None:
    """Raise a ValueError of one line unless `setting` has a symmetric reduction: realizable
    (K = M ≥ 2) with backpropagation (feedback alignment's b breaks the ansatz) and isotropic
    inputs (the reduction is derived for them)."""
    if setting.input_spectrum is not None:
        raise ValueError("the symmetric reduction (and the plateau analysis built on it) takes isotropic inputs; "
                         "this setting has an input_spectrum (use fixed_point on the full flows per level)")
    if setting.K < 2:
        raise ValueError("the symmetric reduction needs K ≥ 2 (at K = 1 the full flows are already a few scalars)")
    if setting.K != setting.M:
        raise ValueError(f"the symmetric reduction needs a realizable setting with K = M; got K={setting.K}, "
                         f"M={setting.M}")
    if setting.feedback != "backprop":
        raise ValueError("the symmetric reduction needs feedback = 'backprop' (a feedback vector b breaks the "
                         "ansatz)")


def arguments(setting: Setting, v_star: float = 1.0) -> dict:
    """The parameters of the reduction for `setting` (K, the flow parameters, κ, κ*, v*) and
    "train_v" (1.0 when the second layer is trained), as floats."""
    check(setting)
    args = setting.ode_args(None, None)
    del args["T"], args["v_star"]
    return {**args, "K": float(setting.K), "v_star": float(v_star)}


def evaluate(kernels: Kernels, targets: tuple[str, ...], y: SymmetricState, args: dict) -> tuple:
    """The sums of the reduction's terms of each of `targets` at `y`, in the order of
    `targets` (scalars, or arrays of the shape of y's fields); `args` as `arguments` returns
    them (scalars, or arrays under vmap). Each integral of each signature is evaluated once, on
    the stacked entries of all its blocks (a few closed forms to trace, whatever the table's
    length)."""
    values = {**y._asdict(), **args, "1": 1.0, "0": 0.0}
    terms = [term for term in _table().TERMS if term.target in targets]
    coefficients = [term.coefficient(*(values[name] for name in term.arguments)) for term in terms]
    blocks: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for term, coefficient in zip(terms, coefficients):
        if term.integral is not None and not is_zero(coefficient):
            group = blocks.setdefault((term.integral, term.signature), [])
            if term.entries not in group:
                group.append(term.entries)
    integrals = {}
    for (name, signature), group in blocks.items():
        columns = [jnp.stack([jnp.asarray(values[entry], dtype=jnp.float64) for entry in column])
                   for column in zip(*group)]
        results = kernels.closed_form(name, signature)(*columns)
        integrals.update({(name, signature, entries): results[p] for p, entries in enumerate(group)})
    sums = {target: 0.0 for target in targets}
    for term, coefficient in zip(terms, coefficients):
        if is_zero(coefficient):
            continue
        if term.integral is not None:
            coefficient = coefficient * integrals[term.integral, term.signature, term.entries]
        sums[term.target] = sums[term.target] + coefficient
    return tuple(sums[target] for target in targets)


@functools.cache  # one jitted field per kernels (`kernels.load` returns one object per model)
def field(kernels: Kernels) -> Callable:
    """The reduced vector field f(t, y, args) of `kernels`, in Diffrax's signature: y a
    `SymmetricState`, args as `arguments` returns them; dv/dt is multiplied by args["train_v"]."""
    @jax.jit  # traced once per signature, however often a solver calls it while tracing
    def rhs(t, y, args):
        dQ, dC, dR, dS, dv = evaluate(kernels, TARGETS, y, args)
        return SymmetricState(dQ, dC, dR, dS, args["train_v"] * dv)

    return rhs


def flows(setting: Setting, y: SymmetricState, v_star: float = 1.0) -> SymmetricState:
    """The reduced flows of `setting` at `y` (dv/dt zero unless the second layer is trained)."""
    return field(setting.kernels)(0.0, y.as_arrays(), arguments(setting, v_star))


def generalisation_error(setting: Setting, y: SymmetricState, v_star: float = 1.0):
    """ε_g at `y` (the shape of y's fields)."""
    (eg,) = evaluate(setting.kernels, ("eg",), y.as_arrays(), arguments(setting, v_star))
    return eg


@dataclass(frozen=True)
class SymmetricTrajectory:
    """A solution of the reduction: `t` (T,), the fields of `SymmetricState` (T,) each at
    the times `t`, and `eg` (T,)."""

    t: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    R: np.ndarray
    S: np.ndarray
    v: np.ndarray
    eg: np.ndarray

    def state(self, index: int) -> SymmetricState:
        """The state at time `t[index]`."""
        return SymmetricState(*(getattr(self, name)[index] for name in TARGETS))


@dataclass(frozen=True)
class ReducedFlows(Flows):
    """The reduction's flows for `nndyn.core.solver.solve`: y the fields of a `SymmetricState`
    as a plain tuple (which an exported program can take), args as `arguments` returns them."""

    def field(self, kernels: Kernels) -> Callable:
        reduced = field(kernels)
        return lambda t, y, args: tuple(reduced(t, SymmetricState(*y), args))

    def error(self, kernels: Kernels) -> Callable:
        return lambda y, args: evaluate(kernels, ("eg",), SymmetricState(*y), args)[0]

    @property
    def sources(self) -> tuple[str, ...]:
        return (__file__, str(_table().__file__))


#: The symmetric reduction's flows (`ReducedFlows`).
REDUCED = ReducedFlows()

#: The solvers `integrate` offers, as `ODEOptions.method`.
SOLVERS = {"Kvaerno5": "implicit", "Tsit5": "adaptive"}


def integrate(setting: Setting, start: SymmetricState, t: np.ndarray, *, v_star: float = 1.0, rtol: float = 1e-10,
              atol: float = 1e-12, max_steps: int = 100_000, solver: str = "Kvaerno5") -> SymmetricTrajectory:
    """Integrate the reduction of `setting` from `start` (at t[0]) and save at the times `t`
    (increasing, (T,)): Diffrax's `solver` ("Kvaerno5", implicit, or "Tsit5") with a PID
    controller at `rtol`, `atol`, through the one solve of the full flows
    (`nndyn.core.solver.solve` with `ODEOptions(method="implicit" or "adaptive")`).

    Raises `DivergenceError` when the state goes non-finite or the solver gives up.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("t must be an increasing array of at least two times")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'Kvaerno5' or 'Tsit5', got {solver!r}")
    options = ODEOptions(method=SOLVERS[solver], rtol=rtol, atol=atol, max_steps=max_steps)
    solution = solve_many(setting, tuple(start.as_arrays()), arguments(setting, v_star), t, options, leading=0,
                           flows=REDUCED)
    if int(solution.status) != Status.ok:
        raise DivergenceError(float(solution.failed_at), None, "the state went non-finite or the solver used up its "
                              f"{max_steps} steps", subject="the symmetric reduction")
    Q, C, R, S, v = (np.asarray(value) for value in solution.ys)
    return SymmetricTrajectory(t, Q, C, R, S, v, np.asarray(solution.eg))
