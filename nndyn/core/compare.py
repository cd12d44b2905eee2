"""Comparing two trajectories on the same time grid (typically simulation against ODE)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core.state import Array
from nndyn.core.trajectory import Trajectory

if TYPE_CHECKING:
    from nndyn.core.continual import Protocol
    from nndyn.core.setting import Setting


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Comparison:
    """Agreement between trajectories `a` and `b` over time (leading dims broadcast).

    **Fields**, each of shape (..., n):

    - `eg_error`: |ε_g(a) − ε_g(b)|;
    - `Q_error`, `R_error`, `v_error`: the largest absolute entry-wise difference;
    - `Q_alignment`, `R_alignment`, `v_alignment`: cosine similarity of the flattened order
      parameters, ⟨A, B⟩ / (|A| |B|), the "alignment" of the blog's Figure 2 (1 = identical up to
      scale).
    """

    t: Array
    eg_error: Array
    Q_error: Array
    R_error: Array
    v_error: Array
    Q_alignment: Array
    R_alignment: Array
    v_alignment: Array


def _flat(x: jax.Array, core_ndim: int) -> jax.Array:
    return x.reshape(x.shape[: x.ndim - core_ndim] + (-1,))


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
    return jnp.sum(a * b, axis=-1) / jnp.where(norms > 0, norms, 1.0)


def _check_alike(a: Trajectory, b: Trajectory) -> None:
    """Raise ValueError unless `a` and `b` are sampled at the same times and their order
    parameters have the same shapes up to broadcasting of leading dimensions."""
    if a.t.shape != b.t.shape or not bool(jnp.allclose(a.t, b.t)):
        raise ValueError("the trajectories are not sampled at the same times")
    for name, core in (("eg", 0), ("Q", 2), ("R", 2), ("v", 1)):
        first, second = jnp.shape(getattr(a, name)), jnp.shape(getattr(b, name))
        if first[len(first) - core:] != second[len(second) - core:]:
            raise ValueError(f"the trajectories' {name} have shapes {first} and {second}: different K or M")
        try:
            jnp.broadcast_shapes(first, second)
        except ValueError:
            raise ValueError(f"the trajectories' {name} have shapes {first} and {second}, which do not match") from None


def compare(a: Trajectory, b: Trajectory) -> Comparison:
    """Compare trajectories `a` and `b` sampled at the same times."""
    _check_alike(a, b)
    fields = {}
    for name, core in (("Q", 2), ("R", 2), ("v", 1)):
        A, B = jnp.broadcast_arrays(_flat(getattr(a, name), core), _flat(getattr(b, name), core))
        fields[f"{name}_error"] = jnp.max(jnp.abs(A - B), axis=-1)
        fields[f"{name}_alignment"] = _cosine(A, B)
    return Comparison(t=a.t, eg_error=jnp.abs(a.eg - b.eg), **fields)


@dataclass(frozen=True)
class Agreement:
    """The answer of a statistical test, `verdict` or `agreement`.

    **Fields:** `scores`, per family of comparisons (`agreement`: per quantity "eg", "Q", "R",
    "v", the largest |mean deviation| / SE over times and entries; `verdict`: per order
    parameter, the largest normal score per entry and window, and along the flow);
    `threshold`, the Bonferroni-corrected critical value they are held to; `comparisons`, how
    many were made; `resolution` (`verdict` only, else None): the test's power, as the smallest
    relative error in the speed of the flows (every step of the ODE scaled by 1 ± ε, e.g. η
    off by ε) whose along-the-flow score would reach the threshold.

    **Properties:** `passed`, whether every score is within the threshold; `conclusive`,
    whether the test could have said no to flows `CONCLUSIVE` (50 %) too fast or too slow;
    `answer`, "yes", "no", or "inconclusive" where it passed without that power (e.g. N = 1,
    whose noise hides any flow).
    """

    scores: dict[str, float]
    threshold: float
    comparisons: int
    resolution: float | None = None

    @property
    def passed(self) -> bool:
        return max(self.scores.values()) <= self.threshold

    @property
    def conclusive(self) -> bool:
        return self.resolution is None or self.resolution <= CONCLUSIVE

    @property
    def answer(self) -> str:
        if not self.passed:
            return "no"
        return "yes" if self.conclusive else "inconclusive"


#: The relative speed error of the flows a `verdict` must be able to detect for its "yes" to
#: count (`Agreement.conclusive`).
CONCLUSIVE = 0.5


def agreement(sim: Trajectory, ode: Trajectory, family_level: float = 1e-3,
              fields: tuple[str, ...] = ("eg", "Q", "R", "v")) -> Agreement:
    """Do simulations (S seeds) agree with their ODEs, each started from its seed's state?

    For every time t > t[0] and every entry X of the `fields` (default ε_g, Q, R, v; other
    trajectories, e.g. a protocol's eg_teacher, Q, R, heads), the seeds' deviations
    d_s = X_sim,s − X_ode,s (fluctuations of order 1/√N) must have a mean within z · SE,
    SE = std_s(d)/√S, where z is the two-sided Student-t quantile with S − 1 degrees of freedom at
    the family-wise level `family_level`, Bonferroni-corrected over all comparisons. Entries that
    do not fluctuate (a frozen v) are skipped.
    """
    from scipy import special  # imported here; scipy.special, not scipy.stats (a second at start-up)

    _check_alike(sim, ode)
    first = fields[0]
    shapes = [(jnp.shape(getattr(sim, name)), jnp.shape(getattr(ode, name))) for name in fields]
    if any(a != b for a, b in shapes) or jnp.ndim(getattr(sim, first)) < 2:
        raise ValueError(f"agreement needs one ODE per seed: {first} of shapes (seeds, times, ...), got "
                         f"{shapes[0][0]} and {shapes[0][1]}")
    seeds = jnp.shape(getattr(sim, first))[0]
    if seeds < 2:
        raise ValueError("agreement needs at least two seeds to estimate the fluctuations")
    scores, comparisons = {}, 0
    for name in fields:
        deviation = jnp.asarray(getattr(sim, name) - getattr(ode, name))[:, 1:].reshape(seeds, -1)
        spread = jnp.std(deviation, axis=0, ddof=1)
        varying = spread > 0
        score = jnp.abs(jnp.mean(deviation, axis=0)) / jnp.where(varying, spread / jnp.sqrt(seeds), 1.0)
        scores[name] = float(jnp.max(jnp.where(varying, score, 0.0), initial=0.0))
        comparisons += int(jnp.sum(varying))
    threshold = float(special.stdtrit(seeds - 1, 1 - family_level / (2 * max(comparisons, 1))))  # t quantile
    return Agreement(scores, threshold, comparisons)


#: What a restart test compares, per order parameter ("Q", "R", "v"): the recorded state at the
#: start of each interval, at its end, and the ODE's prediction of the end, each of shape
#: (seeds, n − 1, ...); the prediction is NaN for an interval that is not tested.
Restarts = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _restarts(setting: Setting, sim: Trajectory, protocol: Protocol | None, dt: float | None,
              options: dict) -> Restarts:
    """The flows restarted from every recorded state of every seed of `sim` over one recording
    interval: one vmapped solve per phase (a plain run is one phase on one teacher), under the
    phase that trained in the interval (its teacher's masked readout, its flow parameters and annealing),
    v the head it trained; NaN predictions for intervals after a protocol (the student rests).
    With structured inputs Q and R are per level (their sums follow from them)."""
    from nndyn.core import sgd
    from nndyn.core.errors import DivergenceError, Status
    from nndyn.core.solver import PER_ELEMENT, ODEOptions, resolve_options, solve_many

    t = np.asarray(sim.t)
    step = np.diff(t)
    if not np.allclose(step, step[0], rtol=1e-9, atol=0):
        raise ValueError("verdict needs a simulation recorded at equally spaced times")
    span = np.array([0.0, step[0]])
    ode = resolve_options(ODEOptions(**{"refine_tail": False, **options}), span, dt)
    if protocol is not None and ode.method != "adaptive":
        raise ValueError("method must be 'adaptive' for a protocol")
    fields = {"Q": "Q", "R": "R", "v": "v"} if sim.Q_levels is None else {"Q": "Q_levels", "R": "R_levels", "v": "v"}
    pairs = {name: (np.asarray(getattr(sim, field))[:, :-1], np.asarray(getattr(sim, field))[:, 1:])
             for name, field in fields.items()}  # per order parameter: the recorded (start, end) of each interval
    seeds, n = np.shape(sim.Q)[:2]
    T = np.asarray(sim.T if sim.T_levels is None else sim.T_levels)
    v_star, b = np.asarray(sim.v_star), None if sim.b is None else np.asarray(sim.b)
    if protocol is None:
        trained = np.zeros((seeds, n - 1), dtype=int)  # one phase: every interval, the setting's flow parameters

        def args_of(phase: int, s: int, k: int) -> dict:
            return setting.ode_args(T[s], v_star[s], None if b is None else b[s])
    else:
        trained = np.asarray(sim.phase)[:, 1:]  # the phase of each interval; len(phases) after the protocol
        head_of = np.array([protocol.head(phase.teacher) for phase in protocol.phases] + [0])
        heads = np.asarray(sim.heads)
        seed, interval = np.indices(trained.shape)
        # v is the head trained in the interval (the record's v is the head trained up to each time)
        pairs["v"] = heads[seed, interval, head_of[trained]], heads[seed, interval + 1, head_of[trained]]
        starts = np.asarray(sim.starts)

        def args_of(phase: int, s: int, k: int) -> dict:
            parameters = protocol.flow_parameters(setting, protocol.phases[phase])
            teacher = protocol.phases[phase].teacher
            return {**setting.ode_args(T[s], sgd.masked_readout(v_star[s], teacher), None if b is None else b[s]),
                    **{name: parameters[name] for name in sgd.FLOW_PARAMETERS[:-1]}, "t_start": starts[s, phase] - t[k],
                    "tau": parameters["tau"]}
    predicted = {name: np.full(end.shape, np.nan) for name, (_, end) in pairs.items()}
    for phase in range(1 if protocol is None else len(protocol.phases)):
        chosen = np.argwhere(trained == phase)
        if not len(chosen):
            continue
        rows = [args_of(phase, s, k) for s, k in chosen]
        args = {name: jnp.asarray(np.stack([row[name] for row in rows]) if name in PER_ELEMENT else value)
                for name, value in rows[0].items() if value is not None}
        y0 = {name: jnp.asarray(start[chosen[:, 0], chosen[:, 1]]) for name, (start, _) in pairs.items()}
        solution = solve_many(setting, y0, args, span, ode, dt, leading=1)
        if not bool(np.all(np.asarray(solution.status) == Status.ok)):
            where = f"a restart of phase {phase}" if protocol is not None else "a restart"
            raise DivergenceError(float(t[chosen[0, 1]]), None, f"{where} could not be integrated")
        for name in predicted:
            predicted[name][chosen[:, 0], chosen[:, 1]] = np.asarray(solution.ys[name])[:, -1]
    return {name: (*pairs[name], predicted[name]) for name in pairs}


def verdict(setting: Setting, sim: Trajectory, *, protocol: Protocol | None = None,
            windows: int = 8, family_level: float = 1e-3, dt: float | None = None, **options) -> Agreement:
    """Does the simulation `sim` (S seeds) follow the flows of `setting`? A test with power at a
    few seeds, unlike a comparison of whole trajectories.

    The ODE is restarted from every recorded state X_s(t_k) of every seed and integrated over one
    recording interval Δ; the residual r = X_s(t_k+1) − ODE_Δ(X_s(t_k)) is then one step of the
    SGD's noise, of mean zero up to O(Δ/N) when the flows are right, and independent from
    interval to interval (a martingale difference): unlike the deviation of whole trajectories,
    it is not amplified where the dynamics are unstable (a plateau's escape time fluctuates by
    O(1) at every N), and S seeds give S·(n − 1) samples instead of S. Two families of
    comparisons, over the entries of Q (upper triangle), R and v (those that move):

    - per entry and per window of time (`windows` equal windows), the mean residual over the
      window's seeds and intervals against its standard error (any error in the flows);
    - per order parameter, the residual's component along the ODE's own step, over all samples
      (an error that speeds up or slows down the dynamics, e.g. a wrong η, is the same sign
      everywhere, and adds up);
    - entries the flows hold exactly fixed (a second layer that does not train) must not move in
      the simulation at all: one that does scores infinity.

    Intervals in which neither the simulation nor the ODE moves any entry by more than
    RESOLUTION times the restart's tolerance (atol + rtol·|X|) are left out: at a converged
    state the residuals are the solver's and round-off's errors, not SGD's noise.

    Each Student-t score is converted to the normal deviate of the same two-sided p-value; the
    threshold is the Bonferroni-corrected normal quantile at the family-wise `family_level`. At
    the blog's N = 784 with 3 seeds, a minibatch size B = 2 in the ODE for an SGD with B = 1 fails
    by far; at N = 500, 32 seeds and t = 30, so does a learning rate 5 % off (tests/test_verdict.py).

    With structured inputs the entries of Q and R are those of every level (`Q_levels`, `R_levels`).

    **Arguments:** `setting` (the SGD's), `sim` (a simulation: shapes (seeds, n, ...), equally
    spaced times), `protocol` for a continual run (`sim` its `simulate_protocol`: each interval
    is restarted under the phase that trained in it, v is the head it trained, and intervals
    after the protocol are not tested), `windows`, `family_level`, and `dt` and `options` as in
    `integrate` (adaptive only for a protocol).

    **Returns:** an `Agreement`: scores per family ("Q", "R", "v" per entry and window;
    "Q along the flow", ... for the components along the step), and its `resolution`: a flow
    whose every step is off by a relative ε shifts the mean along-residual by ε times the mean
    step, so the threshold times the along-the-flow test's standard error over the mean step
    (the best-resolved order parameter's) is the smallest ε the test detects. Above `CONCLUSIVE`
    a pass is "inconclusive" (`Agreement.answer`).
    """
    from scipy import special  # imported here; scipy.special, not scipy.stats (a second at start-up)

    if np.ndim(sim.Q) != 4 or np.shape(sim.Q)[0] < 2 or np.shape(sim.Q)[1] < 2:
        raise ValueError("verdict needs a simulation of at least two seeds and two recorded times, "
                         f"Q of shape (seeds, times, K, K); got {np.shape(sim.Q)}")
    if not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows must be a positive integer, got {windows!r}")
    if protocol is None and sim.protocol:
        raise ValueError("verdict of a continual run needs its protocol")
    if protocol is not None:
        if not sim.protocol:
            raise ValueError("verdict with a protocol needs the simulation of that protocol (simulate_protocol)")
        _check_protocol(setting, protocol, sim)
    restarts = _restarts(setting, sim, protocol, dt, options)
    flat = np.asarray(sim.Q).reshape(np.shape(sim.Q)[0], -1)
    if len(np.unique(flat, axis=0)) < len(flat):
        raise ValueError("verdict needs independent seeds: two of the simulation's seeds are the same run")
    n = np.shape(sim.Q)[1]
    edges = np.linspace(0, n - 1, min(windows, n - 1) + 1).astype(int)
    K = np.shape(sim.Q)[-1]
    upper = np.triu_indices(K)
    scores, comparisons = {}, 0

    leveled = getattr(sim, "Q_levels", None) is not None  # entries per level of a structured input

    def entries(x: np.ndarray, name: str) -> np.ndarray:  # (..., [L,] K, K | K, M | K) -> (..., entries)
        if name == "Q":
            x = x[..., upper[0], upper[1]]
            return x.reshape(x.shape[:-2] + (-1,)) if leveled else x
        if name == "R":
            return x.reshape(x.shape[:-3 if leveled else -2] + (-1,))
        return x

    from nndyn.core.solver import ODEOptions

    ode = ODEOptions(**{name: value for name, value in options.items() if name in ("rtol", "atol")})
    noise = []  # per order parameter: the along-the-flow test's standard error / the mean step
    for name, (start, end, predicted) in restarts.items():
        start, end, predicted = (entries(x, name) for x in (start, end, predicted))
        tested = np.all(np.isfinite(predicted), axis=-1)  # (seeds, n - 1)
        # an interval in which neither SGD nor the ODE moves beyond what the restart's solve
        # resolves (a converged state) tests the solver's error, not the flows: left out
        floor = RESOLUTION * (ode.atol + ode.rtol * np.maximum(np.abs(start), np.abs(end)))
        tested &= np.any((np.abs(end - start) > floor) | (np.abs(predicted - start) > floor), axis=-1)
        residual, step = end - predicted, predicted - start
        if tested.any():  # entries the flows hold fixed (e.g. a frozen v) must not move in SGD at all
            held = np.all(step[tested] == 0, axis=0) & np.any(end[tested] != start[tested], axis=0)
            if held.any():
                scores[f"{name} held fixed by the flows"] = math.inf
                comparisons += int(held.sum())
        moving = np.std(residual[tested], axis=0) > 0 if tested.any() else np.zeros(residual.shape[-1], bool)
        if not moving.any():
            continue
        residual, step = residual[..., moving], step[..., moving]
        per_window = [_normal_scores(residual[:, a:b][tested[:, a:b]]) for a, b in zip(edges[:-1], edges[1:])
                      if tested[:, a:b].sum() >= 2]
        length = np.linalg.norm(step, axis=-1, keepdims=True)
        along = np.sum(residual * step / np.where(length > 0, length, 1.0), axis=-1)[tested].reshape(-1, 1)
        for label, z in ((name, np.concatenate(per_window)), (f"{name} along the flow", _normal_scores(along))):
            scores[label] = float(np.max(z))
            comparisons += z.size
        if along.size >= 2:  # the standard error of the mean along-residual, in units of the mean step
            mean_step = float(np.mean(length[..., 0][tested]))
            if mean_step > 0:
                noise.append(float(np.std(along, ddof=1)) / np.sqrt(along.size) / mean_step)
    threshold = -float(special.ndtri(family_level / (2 * max(comparisons, 1))))  # the normal's upper quantile
    resolution = threshold * min(noise) if noise else math.inf
    return Agreement(scores, threshold, comparisons, resolution)


def _check_protocol(setting: Setting, protocol: Protocol, sim: Trajectory) -> None:
    """Raise ValueError unless `sim` ran `protocol` with `setting`'s K and M."""
    Q, v_star, heads, starts = (np.asarray(x) for x in (sim.Q, sim.v_star, sim.heads, sim.starts))
    shapes = {"K": (Q.shape[-1], setting.K), "teachers": (v_star.shape[-2], protocol.teachers.count),
              "M": (v_star.shape[-1], setting.M), "heads": (heads.shape[-2], protocol.teachers.head_count),
              "phases": (starts.shape[-1] - 1, len(protocol.phases))}
    for name, (simulated, given) in shapes.items():
        if simulated != given:
            raise ValueError(f"the simulation has {name} = {simulated} but the setting and protocol give {given}: "
                             "the verdict tests a run against the protocol it ran")


#: An interval is tested where SGD or the ODE moves an entry by more than this many times the
#: restart's tolerance atol + rtol·|X| (a solve's error over one interval stays well below it).
RESOLUTION = 1e3


def _normal_scores(samples: np.ndarray) -> np.ndarray:
    """Student's t-test that each column of `samples` (m, k) has mean zero, as the normal deviate
    of the same two-sided p-value (finite however small the p-value; 0 where a column does not
    vary)."""
    from scipy import special

    m = samples.shape[0]
    spread = np.std(samples, axis=0, ddof=1)
    t = np.abs(np.mean(samples, axis=0)) / np.where(spread > 0, spread / np.sqrt(m), 1.0)
    with np.errstate(divide="ignore"):  # a p-value below the smallest double: an infinite score
        log_p = np.log(special.stdtr(m - 1, -t))  # log P(T > t), T Student's t with m − 1 dof
    return np.where(spread > 0, -special.ndtri_exp(log_p), 0.0)
