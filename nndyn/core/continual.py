"""Continual learning: one student trained through a protocol of phases, each on one of several
teachers of controlled similarity, by the ODE and by SGD side by side (docs/conventions.md).

Teachers (Lee et al., ICML 2021): `count` teachers of M units each; teacher t's first layer is
W*_t = γ_f W*_0 + √(1 − γ_f²) W*_⊥,t and its readout v*_t = γ_r v*_0 + √(1 − γ_r²) |v*_0| u_t, with
W*_0 the usual teacher (PRNGKey(teacher_seed)), v*_0 = 1, independent N(0, 1) entries in W*_⊥,t
(fold_in(PRNGKey(teacher_seed), t)), and u_t a unit vector orthogonal to v*_0 (a N(0, 1) draw
from fold_in(…, 1000 + t), orthogonalised and normalised): the readouts have v*_0's norm and
cosine γ_r with it exactly (with M = 1 only γ_r = ±1 is possible, and others are refused). The order
parameters cover all teachers at once: R (K, count·M) against every teacher unit, T the joint
teacher overlap (count·M, count·M). Training on teacher t is the plain model with the joint
teacher and the readout v*_t on t's units, zero on the others, so one flow table serves every
phase and every protocol.

Heads: "single" (one readout v for every task) or "multi" (one v per teacher, only the active
task's head trains; task t is evaluated with head t). A phase trains on one teacher for a time
`t`, or until ε_g on that teacher falls below `threshold` (checked at every saved time, for the
ODE as for each SGD seed; `t` is then the most it may take), with optional η, η_v, σ, B, a frozen
first layer, and Saad & Solla's annealing η(t) = η/(1 + (t − t_start)/τ) (η_v likewise).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from nndyn.core import schema, sgd
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.schema import parameter
from nndyn.core.setting import Setting
from nndyn.core.sgd import eg_per_teacher, masked_readout
from nndyn.core.simulate import Simulation
from nndyn.core.solver import ODEOptions, resolve_options, solve_many
from nndyn.core.state import OrderParameters, measure
from nndyn.core.trajectory import Trajectory
from nndyn.core.weights import feedback_vectors, student_weights


@dataclass(frozen=True)
class Teachers:
    """The teachers of a protocol. Each field is a parameter of the schema (the [teachers]
    table of a run config).

    **Arguments:** `count` teachers of the Setting's M units each; `feature_similarity` γ_f and
    `readout_similarity` γ_r in [−1, 1]; `heads`, "single" or "multi".
    """

    count: int = parameter(2, doc="number of teachers", minimum=1)
    feature_similarity: float = parameter(0.0, doc="γ_f: W*_t = γ_f W*_0 + √(1 − γ_f²) W*_⊥,t", minimum=-1,
                                          maximum=1)
    readout_similarity: float = parameter(1.0, doc="γ_r: v*_t is v*_0 rotated at fixed norm to cosine γ_r", minimum=-1,
                                          maximum=1)
    heads: str = parameter("single", doc="single (one readout for all tasks) or multi (one per teacher)",
                           choices=("single", "multi"))

    def __post_init__(self) -> None:
        schema.validate(self)

    @property
    def head_count(self) -> int:
        return self.count if self.heads == "multi" else 1


@dataclass(frozen=True)
class Phase:
    """One phase of a protocol (a [[phases]] table of a run config).

    **Arguments:** `teacher`, the index of the teacher trained on; `t`, the phase's duration, or
    with `threshold` its longest; `threshold`, switch when ε_g on the active teacher falls below
    it; `lr`, `lr_v`, `sigma`, `batch`, overrides of the Setting's for this phase; `anneal`, τ of
    η(t) = η/(1 + (t − t_start)/τ); `frozen`, the first layer does not learn (nor decay).
    """

    teacher: int = parameter(doc="index of the teacher trained on", minimum=0)
    t: float = parameter(doc="duration of the phase (with a threshold: the longest)", above=0)
    threshold: float | None = parameter(None, doc="switch when ε_g on the active teacher falls below this", above=0)
    lr: float | None = parameter(None, doc="η in this phase; default: the Setting's", above=0)
    lr_v: float | None = parameter(None, doc="η_v in this phase; default: the Setting's", minimum=0)
    sigma: float | None = parameter(None, doc="σ in this phase; default: the Setting's", minimum=0)
    batch: int | None = parameter(None, doc="minibatch size B in this phase; default: the Setting's", minimum=1)
    anneal: float | None = parameter(None, doc="τ of the annealing η(t) = η/(1 + (t − t_start)/τ)", minimum=1e-9)
    frozen: bool = parameter(False, doc="freeze the first layer in this phase")

    def __post_init__(self) -> None:
        schema.validate(self)


@dataclass(frozen=True)
class Protocol:
    """Teachers and the phases trained on them, in order."""

    teachers: Teachers
    phases: tuple[Phase, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", tuple(self.phases))
        if not self.phases:
            raise ValueError("phases: a protocol needs at least one phase")
        for index, phase in enumerate(self.phases):
            if phase.teacher >= self.teachers.count:
                raise schema.ParameterError(
                    "teacher",
                    f"phases[{index}].teacher = {phase.teacher} names no teacher "
                    f"(there are {self.teachers.count}: 0 to {self.teachers.count - 1})",
                )

    @property
    def duration(self) -> float:
        """The longest the protocol can take: the sum of the phases' t."""
        return float(sum(phase.t for phase in self.phases))

    def head(self, teacher: int) -> int:
        """The head that learns and evaluates `teacher`."""
        return teacher if self.teachers.heads == "multi" else 0

    def flow_parameters(self, setting: Setting, phase: Phase) -> dict:
        """The flow parameters of `phase` (`nndyn.core.sgd.FLOW_PARAMETERS`: η, η_v, σ, B, λ, λ_v,
        every other flow parameter of the Setting, and τ, inf without annealing), as floats."""
        frozen = phase.frozen
        return {
            **sgd.flow_parameters_of(setting),
            "lr": 0.0 if frozen else (phase.lr if phase.lr is not None else setting.lr),
            "batch": float(phase.batch if phase.batch is not None else setting.batch),
            "lr_v": (phase.lr_v if phase.lr_v is not None else setting.lr_v) if setting.train_second_layer else 0.0,
            "sigma": phase.sigma if phase.sigma is not None else setting.sigma,
            "weight_decay": 0.0 if frozen else setting.weight_decay,
            "weight_decay_v": setting.weight_decay_v if setting.train_second_layer else 0.0,
            "tau": phase.anneal if phase.anneal is not None else math.inf,
        }

    def rates(self, setting: Setting, phase: Phase) -> dict:
        """Deprecated name of `flow_parameters` (they hold B, σ and the decays, not only rates)."""
        warnings.warn("Protocol.rates is now Protocol.flow_parameters", DeprecationWarning, stacklevel=2)
        return self.flow_parameters(setting, phase)


def teachers_weights(setting: Setting, teachers: Teachers, N: int, seed: int = 0):
    """The teachers' first layers W* (count, M, N) and readouts v* (count, M) (module docstring):
    each readout v*_t is v*_0 = 1 rotated at fixed norm by the angle arccos γ_r, towards a
    direction drawn orthogonal to v*_0, so that cos(v*_t, v*_0) = γ_r exactly."""
    M, gf, gr = setting.M, teachers.feature_similarity, teachers.readout_similarity
    if M == 1 and abs(gr) != 1:
        raise schema.ParameterError("readout_similarity", f"readout_similarity = {gr:g} cannot be realised with one "
                                    "teacher unit (M = 1): a readout of one unit at fixed norm is v*_0 or −v*_0, "
                                    "readout_similarity 1 or −1")
    base = jax.random.normal(jax.random.PRNGKey(seed), (M, N))
    v0 = np.ones(M)
    W, v = [base], [jnp.asarray(v0)]
    for t in range(1, teachers.count):
        key = jax.random.PRNGKey(seed)
        W.append(gf * base + math.sqrt(1 - gf**2) * jax.random.normal(jax.random.fold_in(key, t), (M, N)))
        other = np.asarray(jax.random.normal(jax.random.fold_in(key, 1000 + t), (M,)), dtype=np.float64)
        other = other - (other @ v0) / (v0 @ v0) * v0  # orthogonal to v*_0
        norm = np.linalg.norm(other)
        direction = other / norm if norm > 0 else np.zeros(M)
        v.append(jnp.asarray(gr * v0 + math.sqrt(1 - gr**2) * np.linalg.norm(v0) * direction))
    return jnp.stack(W), jnp.stack(v)


def readout_cosines(v_star) -> np.ndarray:
    """The realised cos(v*_t, v*_0) of readouts v_star (..., count, M), (..., count)."""
    v_star = np.asarray(v_star, dtype=np.float64)
    first = v_star[..., :1, :]
    return np.sum(v_star * first, axis=-1) / (np.linalg.norm(v_star, axis=-1) * np.linalg.norm(first, axis=-1))


def __getattr__(name: str):
    """`ContinualTrajectory`, deprecated: a protocol's run is a `Trajectory` (its phases are data)."""
    if name == "ContinualTrajectory":
        warnings.warn("ContinualTrajectory is now Trajectory: a protocol's run is a Trajectory whose phase fields "
                      "are set", DeprecationWarning, stacklevel=2)
        return Trajectory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def active(protocol: Protocol, phase, eg_teacher, heads) -> tuple[np.ndarray, np.ndarray]:
    """ε_g (..., n) on the teacher trained up to each time and that teacher's head (..., n, K),
    from the phase (..., n) that trained up to each time (after the protocol: its last phase's),
    ε_g on every teacher (..., n, count) and the heads (..., n, H, K)."""
    last = protocol.phases[-1].teacher
    teacher_of = np.array([rule.teacher for rule in protocol.phases] + [last])[np.asarray(phase)]
    head_of = np.array([protocol.head(teacher) for teacher in range(protocol.teachers.count)])[teacher_of]
    eg = np.take_along_axis(np.asarray(eg_teacher), teacher_of[..., None], axis=-1)[..., 0]
    v = np.take_along_axis(np.asarray(heads), head_of[..., None, None], axis=-2)[..., 0, :]
    return eg, v


def _starts(phase: np.ndarray, t: np.ndarray, count: int) -> np.ndarray:
    """Each phase's start time and the end (..., P + 1) from the phase trained in each interval
    (..., n − 1) ending at t[1:]."""
    starts = np.full(phase.shape[:-1] + (count + 1,), t[-1])
    for index in np.ndindex(*phase.shape[:-1]):
        for p in range(count + 1):
            later = np.flatnonzero(phase[index] >= p)
            starts[index + (p,)] = t[later[0]] if later.size else t[-1]
    return starts


def _reached(phase: np.ndarray, met: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Per phase (..., P): its threshold met when it ended (True without a threshold)."""
    reached = np.ones(phase.shape[:-1] + (len(protocol.phases),), dtype=bool)
    for p, rule in enumerate(protocol.phases):
        if rule.threshold is None:
            continue
        for index in np.ndindex(*phase.shape[:-1]):
            inside = np.flatnonzero(phase[index] == p)
            reached[index + (p,)] = bool(inside.size and met[index][inside[-1]])
    return reached


def simulate_protocol(
    setting: Setting, protocol: Protocol, N: int, *, seeds: int = 4, dtype: DTypeLike = jnp.float64,
    **options
) -> Trajectory:
    """Train students by online SGD through `protocol` (module docstring), each seed switching
    phases on its own, and record them once per save interval.

    **Arguments:** `setting` (M is each teacher's width);
    `N`; `seeds`, a count; `options`, the other fields of `Simulation`
    (save_every, init_scale, init_scale_v, teacher_seed; t_max is the protocol's duration). Every
    phase's t must be a whole number of save intervals.

    **Returns:** a protocol's `Trajectory` (its phase fields set) with a leading seed axis.
    """
    _isotropic(setting)
    options.pop("t_max", None)
    save_every = options.get("save_every") or N
    interval = save_every / N
    for index, phase in enumerate(protocol.phases):
        if abs(phase.t / interval - round(phase.t / interval)) > 1e-9 or round(phase.t / interval) < 1:
            raise schema.ParameterError(
                "t",
                f"phases[{index}].t = {phase.t:g} is not a whole number of save "
                f"intervals ({interval:g} at N = {N}, save_every = {save_every})",
            )
    config = Simulation(N=N, t_max=protocol.duration, seeds=seeds, **options)
    saves = sum(round(phase.t / interval) for phase in protocol.phases)
    seed_list = list(range(config.seeds))
    W_teacher, v_star = teachers_weights(setting, protocol.teachers, N, config.teacher_seed)
    W_joint = W_teacher.reshape(-1, N)
    W, v = student_weights(setting, N, seed_list, config.init_scale, config.init_scale_v)
    heads = jnp.stack(
        [v] + [_extra_head(setting, seed_list, h, config) for h in range(1, protocol.teachers.head_count)], axis=1
    )
    b = feedback_vectors(setting, seed_list)
    b = None if b is None else jnp.asarray(b)
    static, heads_of = sgd.structure(setting), _heads_of(protocol)
    X_test = sgd.held_out_inputs(N, config.held_out, config.teacher_seed)
    labels = sgd.held_out_labels(setting, W_teacher, v_star, X_test)
    Q0, R0, heads0, eg0, eg_test0 = sgd.initial_records(static, heads_of, W, heads, W_joint, v_star, b, X_test, labels)
    largest = max(phase.batch or setting.batch for phase in protocol.phases)  # samples drawn per step
    _, (Q, R, heads_t, eg, eg_test, phase, met) = sgd.train(
        static, heads_of, _table(setting, protocol, v_star, interval), sgd.seed_keys(seed_list),
        sgd.initial_carry(W, heads, W_joint, jnp.dtype(dtype)), W_joint, v_star, b, X_test, labels,
        jnp.arange(saves), save_every=save_every, largest=largest,
        varying=any(phase.batch not in (None, setting.batch) for phase in protocol.phases), dtype=jnp.dtype(dtype))
    sgd.raise_if_diverged({"Q": Q, "R": R, "v": heads_t}, (np.arange(saves) + 1) * interval, seed_list)
    t = np.arange(saves + 1) * interval
    phase, met = np.asarray(phase), np.asarray(met)  # (S, saves)
    S = len(seed_list)
    first = np.zeros((S, 1), dtype=phase.dtype)
    T = measure(W_joint, W_joint)[2]
    phase = np.concatenate([first, phase], axis=1)
    eg_teacher = np.asarray(jnp.concatenate([eg0[:, None], eg], axis=1))
    heads_t = np.asarray(jnp.concatenate([heads0[:, None], heads_t], axis=1))
    eg_active, v_active = active(protocol, phase, eg_teacher, heads_t)
    return Trajectory(
        jnp.asarray(t), jnp.asarray(eg_active),
        jnp.concatenate([Q0[:, None], Q], axis=1),
        jnp.concatenate([R0[:, None], R], axis=1),
        jnp.asarray(v_active),
        jnp.broadcast_to(T, (S,) + T.shape),
        jnp.broadcast_to(v_star, (S,) + v_star.shape),
        eg_test=jnp.concatenate([eg_test0[:, None], eg_test], axis=1),
        b=b,
        eg_teacher=jnp.asarray(eg_teacher),
        heads=jnp.asarray(heads_t),
        phase=jnp.asarray(phase),
        starts=jnp.asarray(_starts(phase[:, 1:], t, len(protocol.phases))),
        reached=jnp.asarray(_reached(phase[:, 1:], met, protocol)),
    )


def _heads_of(protocol: Protocol) -> tuple[int, ...]:
    """The head of each teacher."""
    return tuple(protocol.head(teacher) for teacher in range(protocol.teachers.count))


def _table(setting: Setting, protocol: Protocol, v_star, save_interval: float) -> dict:
    """The engine's phase table of `protocol` (`nndyn.core.sgd.phase_table`), with the rest
    after it."""
    rows = [{**protocol.flow_parameters(setting, phase), "teacher": phase.teacher, "head": protocol.head(phase.teacher),
             "saves": round(phase.t / save_interval), "threshold": phase.threshold or -math.inf}
            for phase in protocol.phases]
    last = protocol.phases[-1].teacher
    return sgd.phase_table(setting, rows + [sgd.rest_row(setting, last, protocol.head(last))], v_star)


def _extra_head(setting: Setting, seeds, head: int, config: Simulation):
    """Head `head` ≥ 1 of a multi-head student: ones for a fixed v, else N(0, init_scale_v²)
    from fold_in(PRNGKey(seed), 10 + head)."""
    if not setting.train_second_layer:
        return jnp.ones((len(seeds), setting.K))
    scale = config.init_scale if config.init_scale_v is None else config.init_scale_v
    return scale * jnp.stack(
        [jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 10 + head), (setting.K,)) for seed in seeds]
    )


def _isotropic(setting: Setting) -> None:
    """Protocols take isotropic inputs: a ParameterError naming input_spectrum otherwise."""
    if setting.structured:
        raise schema.ParameterError("input_spectrum", "input_spectrum: continual protocols take isotropic inputs "
                                                      "(structured inputs are not supported there yet)")


def integrate_protocol(
    setting: Setting, protocol: Protocol, init: OrderParameters, t: ArrayLike, heads: ArrayLike | None = None, **options
) -> Trajectory:
    """Integrate the flows through `protocol` from `init` and record them at the times `t`.

    **Arguments:** `init`, with R (..., K, count·M), T the joint teacher overlap, v_star the
    teachers' readouts concatenated (count·M,), b for feedback alignment; leading
    dimensions (seeds) are integrated one after the other (each switches on its own); `t` (n,),
    equally spaced from 0 to at least the protocol's duration, every phase's t a whole number of
    its spacing; `heads` (..., H, K), default: init.heads (a protocol trajectory's
    `initial_state()` carries them), else every head equal to init.v; `options`, fields of
    `ODEOptions` (adaptive only).

    **Returns:** a protocol's `Trajectory` (leading dimensions as init's).
    """
    _isotropic(setting)
    options = ODEOptions(**options)
    if options.method != "adaptive":
        raise ValueError("method must be 'adaptive' for a protocol")
    options = resolve_options(options, np.asarray(t, dtype=np.float64), None)
    init.validate()
    count, M, H = protocol.teachers.count, setting.M, protocol.teachers.head_count
    if init.T.shape[-1] != count * M or init.K != setting.K:
        raise ValueError(
            f"init must have K = {setting.K} and count·M = {count * M} teacher units, got K = {init.K} "
            f"and {init.T.shape[-1]}"
        )
    grid = np.asarray(t, dtype=np.float64)
    spacing = grid[1] - grid[0] if grid.size > 1 else 0.0
    if grid.ndim != 1 or grid.size < 2 or grid[0] != 0 or not np.allclose(np.diff(grid), spacing, rtol=1e-9):
        raise ValueError("t must be equally spaced times from 0")
    for index, phase in enumerate(protocol.phases):  # a phase ends on a saved time, where it switches
        if abs(phase.t / spacing - round(phase.t / spacing)) > 1e-9 * max(1.0, phase.t / spacing):
            raise ValueError(f"phases[{index}].t = {phase.t:g} is not a whole number of the spacing of t "
                             f"({spacing:g}): a phase switches at a saved time")
    if grid[-1] < protocol.duration * (1 - 1e-12):
        raise ValueError(f"t ends at {grid[-1]:g}, before the protocol does (t = {protocol.duration:g})")
    leading = init.Q.shape[:-2]
    if heads is None and init.heads is not None:
        heads = init.heads
    if heads is None:
        heads = np.broadcast_to(np.asarray(init.v)[..., None, :], leading + (H, setting.K))
    elif np.shape(heads) != leading + (H, setting.K):
        raise ValueError(f"heads must have shape {leading + (H, setting.K)} (..., heads, K), got {np.shape(heads)}")
    runs = [
        _integrate_one(setting, protocol, _element(init, index), np.asarray(heads)[index], grid, spacing, options)
        for index in np.ndindex(*leading)
    ]
    fields = [np.stack([run[k] for run in runs]).reshape(leading + runs[0][k].shape) for k in range(len(runs[0]))]
    eg, Q, R, heads_t, phase = fields
    v_star = np.asarray(init.v_star).reshape(leading + (count, M))
    eg_active, v_active = active(protocol, phase, eg, heads_t)
    return Trajectory(
        jnp.asarray(grid), jnp.asarray(eg_active), jnp.asarray(Q), jnp.asarray(R), jnp.asarray(v_active),
        jnp.asarray(init.T), jnp.asarray(v_star), b=init.b,
        eg_teacher=jnp.asarray(eg), heads=jnp.asarray(heads_t), phase=jnp.asarray(phase),
        starts=jnp.asarray(_starts(phase[..., 1:], grid, len(protocol.phases))),
        reached=jnp.asarray(_reached_ode(phase, eg, protocol)),
    )


def _element(state: OrderParameters, index: tuple) -> OrderParameters:
    """Element `index` of a state whose fields all carry the leading dimensions."""
    return jax.tree_util.tree_map(lambda value: np.asarray(value)[index], state)


def _reached_ode(phase, eg, protocol: Protocol) -> np.ndarray:
    met = np.zeros(phase.shape[:-1] + (phase.shape[-1] - 1,), dtype=bool)
    for index in np.ndindex(*phase.shape[:-1]):
        for j in range(1, phase.shape[-1]):
            p = phase[index + (j,)]
            if p < len(protocol.phases) and protocol.phases[p].threshold is not None:
                met[index + (j - 1,)] = eg[index + (j, protocol.phases[p].teacher)] < protocol.phases[p].threshold
    return _reached(phase[..., 1:], met, protocol)


@functools.partial(jax.jit, static_argnames=("setting", "protocol"))
def _eg_over_times(setting: Setting, protocol: Protocol, Q, R, heads, T, v_star, b):
    """ε_g on every teacher (n, count) of states Q (n, K, K), R (n, K, count·M), heads (n, H, K)."""
    heads_of = _heads_of(protocol)
    return jax.vmap(lambda Q, R, heads: eg_per_teacher(setting, heads_of, Q, R, heads, T, v_star, b))(Q, R, heads)


def _integrate_one(
    setting: Setting, protocol: Protocol, init: OrderParameters, heads, grid, spacing, options: ODEOptions
):
    """One student through the protocol: (ε_g per teacher, Q, R, heads, phase) at every grid time."""
    n = grid.size
    v_star = np.asarray(init.v_star).reshape(protocol.teachers.count, setting.M)
    T = np.asarray(init.T)
    Q, R, heads = np.asarray(init.Q), np.asarray(init.R), np.array(heads)

    def eg_of(Q, R, heads):
        return np.asarray(_eg_over_times(setting, protocol, Q, R, heads, T, v_star, init.b))

    record = {
        "eg": np.empty((n, protocol.teachers.count)),
        "Q": np.empty((n,) + Q.shape),
        "R": np.empty((n,) + R.shape),
        "heads": np.empty((n,) + heads.shape),
        "phase": np.full(n, len(protocol.phases)),
    }
    record["eg"][:1] = eg_of(Q[None], R[None], heads[None])
    record["Q"][0], record["R"][0], record["heads"][0], record["phase"][0] = Q, R, heads, 0
    index = 0  # the grid index where the current phase starts
    for p, phase in enumerate(protocol.phases):
        if index == n - 1:
            break
        head = protocol.head(phase.teacher)
        parameters = protocol.flow_parameters(setting, phase)
        args = {
            **setting.ode_args(T, masked_readout(v_star, phase.teacher), init.b),
            **{name: parameters[name] for name in sgd.FLOW_PARAMETERS[:-1]},
            "t_start": grid[index],
            "tau": parameters["tau"],
        }
        end = min(n - 1, index + round(phase.t / spacing))
        y0 = {"Q": Q, "R": R, "v": heads[head]}
        solution = solve_many(setting, y0, args, np.clip(grid, grid[index], grid[end]), options, leading=0)
        ys = solution.ys
        if int(solution.status) != Status.ok:
            raise DivergenceError(
                float(grid[index]),
                None,
                f"phase {p} could not be integrated (it diverged or used up "
                f"{options.max_steps} steps)",
            )
        inside = slice(index + 1, end + 1)
        ys = {name: np.asarray(value)[inside] for name, value in ys.items()}
        heads_t = np.repeat(heads[None], end - index, axis=0)
        heads_t[:, head] = ys["v"]
        eg = eg_of(ys["Q"], ys["R"], heads_t)
        if phase.threshold is not None:  # switch at the first saved time below the threshold
            below = np.flatnonzero(eg[:, phase.teacher] < phase.threshold)
            if below.size:
                end = index + 1 + below[0]
        kept = end - index
        inside = slice(index + 1, end + 1)
        record["Q"][inside], record["R"][inside], record["heads"][inside] = (
            ys["Q"][:kept],
            ys["R"][:kept],
            heads_t[:kept],
        )
        record["eg"][inside], record["phase"][inside] = eg[:kept], p
        Q, R, heads = ys["Q"][kept - 1], ys["R"][kept - 1], heads_t[kept - 1].copy()
        index = end
    rest = slice(index + 1, n)  # the protocol is over: the student rests
    record["eg"][rest], record["Q"][rest], record["R"][rest], record["heads"][rest] = record["eg"][index], Q, R, heads
    return record["eg"], record["Q"], record["R"], record["heads"], record["phase"]
