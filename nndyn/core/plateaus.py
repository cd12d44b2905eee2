"""The unspecialised plateaus of a realizable setting, their escape, and η_c.

On Saad & Solla's symmetric ansatz (K = M, T = I, v* = 1; `nndyn.core.symmetric`) a plateau is a
fixed point with R = S: every student unit overlaps every teacher unit alike, so no unit has
specialised. There are two (docs/fixed-points.md, "Two plateaus"):

- "identical": Q = C, the students are one vector. The flows keep Q = C, so only students
  started identical reach it; at η → 0 it is Saad & Solla's symmetric fixed point
  (Q = C = 1/(2K − 1), R = S = 1/√(K(2K − 1)) for erf).
- "distinct": Q > C, the students differ: the η² terms (SGD's own fluctuations, ∝ η²/B) push
  them apart. Learning from distinct students, i.e. from any random initialisation, visits this
  one. As η → 0 or B → ∞ it merges with "identical".

Each is found by integrating the reduction on its subspace (R = S, and Q = C for "identical")
from students with no teacher overlap (`_settle`), projected back onto the subspace every
`CHUNK`/η time units so that round-off cannot break the symmetry, until its flows are below
`SETTLED`·η; then Newton's method (`nndyn.core.fixed_points.fixed_point`) polishes it, in the
reduction (any K) or, with `full`, in the full flows from its expansion (the Jacobian then has
the directions that break the ansatz too, and their number is the plateau's count of unstable
directions). A plateau is left along its most unstable direction at λ_u = max Re λ
(`FixedPoint.escape_rate`); from an initial distance δ₀ along it the escape takes
ln(1/δ₀)/λ_u plus an O(1/λ_u) approach (`FixedPoint.escape_time`).

`plateau_threshold` gives η_c: the learning rate above which the "distinct" plateau is stable,
so that students never specialise.

With structured inputs (`Setting.input_spectrum`, docs/structured.md) there is no reduction: the
same two plateaus are found in the full flows per level, on the subspace that the permutations
of the students and of the teachers (T^ℓ = f_ℓ I) leave invariant (every level's R^ℓ one number,
Q^ℓ one diagonal and one off-diagonal number, one number for "identical"; T^ℓ = τ_ℓ f_ℓ I), integrated and
projected in the same chunks, then polished by Newton's method in the full flows per level.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jax.typing import ArrayLike

from nndyn.core import spectrum, symmetric
from nndyn.core.errors import DivergenceError
from nndyn.core.fixed_points import FixedPoint, FixedPointError, fixed_point, learning_rate_threshold
from nndyn.core.fixed_points import _field as compiled_field
from nndyn.core.integrate import integrate
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters
from nndyn.core.symmetric import SymmetricState

#: The plateaus, by name (see the module docstring).
PLATEAUS = ("identical", "distinct")
#: The reduction is integrated in chunks of CHUNK/η time units, projected onto the plateau's
#: subspace after each (round-off along an unstable direction grows by at most e^(CHUNK λ_u/η)).
CHUNK = 50.0
#: The most chunks integrated before Newton's method takes over.
MAX_CHUNKS = 200
#: The largest |flow|, relative to η, at which a chunked integration hands over to Newton's
#: method (the separation of the students, Q − C, settles slowly at small η).
SETTLED = 1e-5
#: |R − S| above which the point Newton's method reached has left the unspecialised subspace
#: (specialised points have |R − S| of order one; near η_c the plateau's specialising eigenvalue
#: is near zero and Newton's step amplifies round-off along it to ~1e-8).
UNSPECIALISED = 1e-6
#: The learning rates, as shares of η_max, at which `plateau_threshold` looks for η_c's bracket,
#: upwards; where the first is stable already, halvings of it downwards (η_c K falls with K:
#: 0.14 at K = 10⁴).
SCAN = tuple(np.arange(1, 16) / 16)


def _project(state: SymmetricState, identical: bool) -> SymmetricState:
    """`state` on the plateau's subspace: R = S (their mean), and Q = C (their mean) when
    `identical`."""
    overlap = 0.5 * (np.asarray(state.R) + np.asarray(state.S))
    Q, C = np.asarray(state.Q), np.asarray(state.C)
    if identical:
        Q = C = 0.5 * (Q + C)
    return SymmetricState(Q, C, overlap, overlap, np.asarray(state.v))


def _settle(setting: Setting, identical: bool) -> SymmetricState:
    """The state where the reduction, kept on the plateau's subspace, comes to rest from students
    with no overlap with the teachers: orthogonal ones of unit norm, or for `identical` one
    vector of norm 1/K (their sum, the output's, then has the norm of one unit: larger ones
    diverge at large η)."""
    K = setting.K
    state = SymmetricState(1.0 / K, 1.0 / K, 0.0, 0.0, 1.0) if identical else SymmetricState(1.0, 0.0, 0.0, 0.0, 1.0)
    span = np.array([0.0, CHUNK / setting.lr])
    for _ in range(MAX_CHUNKS):
        try:
            state = _project(symmetric.integrate(setting, state, span).state(-1), identical)
        except DivergenceError as error:
            raise FixedPointError(f"the {'identical' if identical else 'distinct'} students reach no plateau at "
                                  f"η = {setting.lr:g}: {error}") from None
        if np.max(np.abs(np.asarray(symmetric.flows(setting, state)))) < SETTLED * setting.lr:
            return state
    raise FixedPointError(f"the {'identical' if identical else 'distinct'} students did not settle on a plateau "
                          f"within {MAX_CHUNKS * CHUNK / setting.lr:g} time units (η = {setting.lr:g})")


def _project_levels(state: OrderParameters, identical: bool) -> OrderParameters:
    """A structured state on the plateau's invariant subspace, level by level: R^ℓ its mean, Q^ℓ
    its mean diagonal and off-diagonal (one mean for `identical`); Q, R their sums."""
    Q_levels, R_levels = np.asarray(state.Q_levels), np.asarray(state.R_levels)
    K = Q_levels.shape[-1]
    eye = np.eye(K)
    diagonal = np.trace(Q_levels, axis1=-2, axis2=-1) / K
    off = (Q_levels.sum(axis=(-2, -1)) - K * diagonal) / (K * (K - 1))
    if identical:
        diagonal = off = Q_levels.mean(axis=(-2, -1))
    Q_levels = diagonal[:, None, None] * eye + off[:, None, None] * (1 - eye)
    R_levels = np.broadcast_to(R_levels.mean(axis=(-2, -1))[:, None, None], R_levels.shape).copy()
    return dataclasses.replace(state, Q=Q_levels.sum(0), R=R_levels.sum(0), Q_levels=Q_levels, R_levels=R_levels)


def _settle_levels(setting: Setting, identical: bool) -> OrderParameters:
    """Like `_settle`, in the full flows per level of a structured input: students with no
    teacher overlap, spread over the levels as the coordinates are (orthogonal of unit norm, or
    one vector of norm 1/K), T^ℓ = τ_ℓ f_ℓ I (τ the `teacher_spectrum`, default 1)."""
    assert setting.input_spectrum is not None
    K, fractions = setting.K, spectrum.fractions(setting.input_spectrum)
    eye, level = np.eye(K), fractions[:, None, None]
    variances = np.ones(len(fractions)) if setting.teacher_spectrum is None else np.asarray(setting.teacher_spectrum)
    teacher = level * variances[:, None, None]
    Q_levels = level * (np.full((K, K), 1.0 / K) if identical else eye)
    state = OrderParameters(Q_levels.sum(0), np.zeros((K, K)), (teacher * eye).sum(0), np.ones(K), np.ones(K),
                            Q_levels=Q_levels, R_levels=np.zeros_like(Q_levels), T_levels=teacher * eye)
    span = np.array([0.0, CHUNK / setting.lr])
    field, _, flatten, _, _, _ = compiled_field(setting)  # jitted once per shape (the check runs every chunk)
    for _ in range(MAX_CHUNKS):
        try:
            state = _project_levels(integrate(setting, state, span, refine_tail=False).state_at(-1), identical)
        except DivergenceError as error:
            raise FixedPointError(f"the {'identical' if identical else 'distinct'} students reach no plateau at "
                                  f"η = {setting.lr:g}: {error}") from None
        flows = field(flatten(state.as_ode_state()), state.v, setting.ode_args(state.T_levels, state.v_star))
        if float(np.max(np.abs(np.asarray(flows)))) < SETTLED * setting.lr:
            return state
    raise FixedPointError(f"the {'identical' if identical else 'distinct'} students did not settle on a plateau "
                          f"within {MAX_CHUNKS * CHUNK / setting.lr:g} time units (η = {setting.lr:g})")


def _specialisation(state) -> float:
    """R − S of a `SymmetricState`, or for a structured state the largest spread of a level's
    R^ℓ entries (zero on a plateau)."""
    if isinstance(state, OrderParameters):
        R_levels = np.asarray(state.R_levels)
        return float(np.max(R_levels.max(axis=(-2, -1)) - R_levels.min(axis=(-2, -1))))
    return float(np.asarray(state.R) - np.asarray(state.S))


def _plateau(setting: Setting, name: str) -> FixedPoint:
    """The plateau `name` ("identical" or "distinct") as a fixed point of the reduction, or of
    the full flows per level for structured inputs."""
    settle = _settle_levels if setting.structured else _settle
    point = fixed_point(setting, settle(setting, identical=name == "identical"))
    state = point.state
    if abs(_specialisation(state)) > UNSPECIALISED:
        raise FixedPointError(f"Newton's method left the unspecialised subspace from the {name} plateau's start "
                              f"(R − S = {_specialisation(state):.2g})")
    return point


def plateau(setting: Setting, name: str, T: ArrayLike | None = None, v_star: ArrayLike | None = None, *,
            full: bool = False) -> FixedPoint:
    """The unspecialised plateau `name` ("identical" or "distinct", see the module docstring) of
    the realizable `setting` (K = M ≥ 2, backprop). Raises `FixedPointError` where learning
    reaches no such plateau (e.g. identical students diverge at large η).

    **Arguments:** `full`: polish it in the full flows (`state` `OrderParameters`, eigenvalues
    of the full Jacobian, O(K⁴) per evaluation); else the reduction's (`state` a
    `SymmetricState`, eigenvalues within the ansatz, any K). `T` (M, M), `v_star` (M,): a
    teacher other than T = I, v* = 1 (implies `full`): that teacher's plateau, reached by
    Newton's method from T = I's (for a teacher near the identity, e.g. one drawn at large N).

    With structured inputs the plateau is found in the full flows per level (module docstring;
    `full` has no other meaning there), for the teacher T^ℓ = f_ℓ I only.
    """
    if name not in PLATEAUS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PLATEAUS))}, got {name!r}")
    if setting.structured:
        _check_structured(setting, T, v_star)
        return _plateau(setting, name)
    symmetric.check(setting)
    point = _plateau(setting, name)
    if not (full or T is not None or v_star is not None):
        return point
    state = point.state
    assert isinstance(state, SymmetricState)
    start = dataclasses.replace(state.expand(setting.K),
                                T=np.eye(setting.K) if T is None else np.asarray(T, dtype=np.float64),
                                v_star=np.ones(setting.K) if v_star is None else np.asarray(v_star, dtype=np.float64))
    return fixed_point(setting, start)


def _check_structured(setting: Setting, T, v_star) -> None:
    """One line where a structured setting has no plateaus as found here."""
    if setting.K < 2 or setting.K != setting.M:
        raise ValueError(f"the plateaus need a realizable setting with K = M ≥ 2; got K={setting.K}, M={setting.M}")
    if setting.feedback != "backprop":
        raise ValueError("the plateaus need feedback = 'backprop' (a feedback vector b breaks their symmetry)")
    if T is not None or v_star is not None:
        raise ValueError("with an input_spectrum the plateaus are found for the teacher T^ℓ = f_ℓ I, v* = 1 only: "
                         "give neither T nor v_star")


def plateaus(setting: Setting, T: ArrayLike | None = None, v_star: ArrayLike | None = None, *,
             full: bool = False) -> dict[str, FixedPoint]:
    """Both plateaus, {"identical": FixedPoint, "distinct": FixedPoint}, as `plateau` finds
    them; a name is missing where learning reaches no such plateau (`plateau` says why). Where
    the two have merged (η → 0 or B → ∞) "distinct" is the point "identical" is."""
    found = {}
    for name in PLATEAUS:
        try:
            found[name] = plateau(setting, name, T, v_star, full=full)
        except FixedPointError:
            continue
    return found


def _distinct_rate(setting: Setting, lr: float, start: SymmetricState | None, full: bool):
    """(the "distinct" plateau at η = η_v = `lr` in the reduction, its max Re λ), Newton's method
    starting from `start` (a nearby η's plateau) or, without one or where that fails, from a
    settled integration."""
    changed = setting.replace(lr=lr, lr_v=lr)
    point = None
    if start is not None:
        try:
            point = fixed_point(changed, start)
        except FixedPointError:
            point = None
        if point is not None and abs(_specialisation(point.state)) > UNSPECIALISED:
            point = None  # it specialised: not the plateau
    if point is None:
        point = _plateau(changed, "distinct")
    state = point.state
    assert isinstance(state, SymmetricState)
    if full:
        return state, float(np.real(fixed_point(changed, state.expand(setting.K)).eigenvalues[0]))
    return state, float(np.real(point.eigenvalues[0]))


def plateau_threshold(setting: Setting, *, full: bool = False, relative_tolerance: float = 1e-6) -> float | None:
    """η_c: the learning rate (η_v = η) above which the "distinct" plateau of the realizable
    `setting` (K = M ≥ 2, backprop, T = I) is stable, so that students started on it never
    specialise; None where it stays a saddle up to η_max (perfect learning's stability limit,
    within the ansatz), e.g. at small K.

    The plateau's max Re λ (within the ansatz, or with `full` of the full Jacobian: O(K⁴) per
    evaluation) is scanned at η_max·`SCAN` for its first change of sign, then bisected to
    `relative_tolerance`, each plateau found by Newton's method from its neighbour's. Isotropic
    inputs only (it scans the symmetric reduction)."""
    symmetric.check(setting)
    eta_max = learning_rate_threshold(setting.replace(sigma=0.0), symmetric=True, relative_tolerance=1e-8)
    below, state = None, None
    for share in SCAN:
        lr = share * eta_max
        state, rate = _distinct_rate(setting, lr, state, full)
        if rate < 0:
            break
        below, below_state = lr, state
    else:
        return None
    if below is None:  # stable at the first share already: η_c is below it
        above, above_state = lr, state
        while below is None:
            lr = lr / 2
            if lr < 1e-6 * eta_max:
                raise FixedPointError(f"the distinct plateau is stable down to η = {lr:.3g}: no η_c found")
            state, rate = _distinct_rate(setting, lr, above_state, full)
            if rate < 0:
                above, above_state = lr, state
            else:
                below, below_state = lr, state
        lr = above
    above = lr
    while above - below > relative_tolerance * above:
        middle = 0.5 * (below + above)
        middle_state, rate = _distinct_rate(setting, middle, below_state, full)
        if rate < 0:
            above = middle
        else:
            below, below_state = middle, middle_state
    return 0.5 * (below + above)
