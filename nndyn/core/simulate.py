"""Online SGD of a student network on a teacher, at finite input dimension N: `simulate`, a
protocol of one phase on the engine's scan (`nndyn.core.sgd`, which states the step), and
`Simulation`, the scale of a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from nndyn.core import schema, sgd, spectrum
from nndyn.core.schema import parameter
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters, measure, measure_levels
from nndyn.core.trajectory import Trajectory
from nndyn.core.weights import feedback_vectors, student_weights, teacher_weights

PROGRESS_CHUNKS = 20  # a run with a progress callback is split into this many jitted calls


@dataclass(frozen=True)
class Simulation:
    """The scale of an SGD simulation. Each field is a parameter of the schema
    (`nndyn.core.schema`); `simulate` takes them as arguments, `nndyn run` configs as
    keys.

    **Arguments:**

    - `N`: the input dimension.
    - `t_max`: the training time; round(t_max·N) steps are taken (rounded down to whole saves).
    - `seeds`: the number of seeds S (students, each with its own data stream).
    - `save_every`: SGD steps between records (default N, once per unit of time).
    - `init_scale`, `init_scale_v`: the students' initial weight scales (see
      `student_weights`).
    - `teacher_seed`: the seed of the teacher, shared by all seeds.
    - `held_out`: noise-free test examples on which `eg_test` is measured.
    """

    N: int = parameter(doc="input dimension of the simulation", minimum=1)
    t_max: float = parameter(doc="training time, in SGD steps / N", above=0)
    seeds: int = parameter(4, doc="number of seeds (students, each with its own data)", minimum=1)
    save_every: int | None = parameter(None, doc="SGD steps between records; default: N", minimum=1)
    init_scale: float = parameter(1.0, doc="students' initial weights ~ N(0, init_scale²)", above=0)
    init_scale_v: float | None = parameter(None, doc="students' initial v ~ N(0, init_scale_v²); default: init_scale",
                                           above=0)
    teacher_seed: int = parameter(0, doc="seed of the teacher's weights", minimum=0)
    held_out: int = parameter(2000, doc="noise-free test examples for the measured test error", minimum=1)

    def __post_init__(self) -> None:
        schema.validate(self)
        if self.steps_per_save > round(self.t_max * self.N):
            raise schema.ParameterError("t_max", f"t_max={self.t_max:g} is shorter than one save interval "
                                                 f"({self.steps_per_save} steps at N = {self.N})")

    @property
    def steps_per_save(self) -> int:
        """SGD steps between records."""
        return self.N if self.save_every is None else self.save_every


def simulate(setting: Setting, N: int, t_max: float, *, seeds: int | Sequence[int] | None = None,
             W0: ArrayLike | None = None, v0: ArrayLike | None = None, W_teacher: ArrayLike | None = None,
             v_star: ArrayLike | None = None, b: ArrayLike | None = None, dtype: DTypeLike = jnp.float64,
             progress: Callable[[float], None] | None = None, v_teacher: ArrayLike | None = None,
             **options) -> Trajectory:
    """Train students by online SGD and record their order parameters.

    **Arguments:**

    - `setting`: the `Setting` (η, η_v, σ, B, trained second layer, activation).
    - `N`, `t_max`: the input dimension and the training time (see `Simulation`).
    - `seeds`: a count S (seeds 0..S-1; default `Simulation`'s) or a sequence of seeds;
      each seed draws its own student and its own data stream (so a seed's run does not depend
      on the others run with it); groups of SEED_GROUP seeds are stepped together.
    - `options`: the other fields of `Simulation` (save_every, init_scale, init_scale_v,
      teacher_seed, held_out).
    - `W0` (S, K, N), `v0` (S, K): the students' initial weights instead of drawn ones.
    - `W_teacher` (M, N), `v_star` (M,): the teacher instead of the drawn one (`v_teacher` is
      the former name of `v_star`, deprecated).
    - `b` (K,) or (S, K): for feedback alignment, the feedback vectors instead of the drawn ones
      (`feedback_vectors`); recorded in the trajectory.
    - `dtype`: the precision of the SGD steps (the teacher's fields included), float64 (default)
      or float32 (about 1.2× faster on CPU; the inputs are float32 draws either way, and the
      order parameters are measured in float64; benchmarks/RESULTS.md measures the difference).
    - `progress`: None, or a callable given the fraction done after each of up to
      PROGRESS_CHUNKS chunks of the run (the results do not depend on the chunking).

    **Returns:** a `Trajectory` with a leading seed axis; start the ODE from its
    `initial_state()` to compare with exactly the same initial order parameters.
    """
    if v_teacher is not None:
        warnings.warn("simulate(v_teacher=...) is now v_star=...", DeprecationWarning, stacklevel=2)
        v_star = v_teacher if v_star is None else v_star
    if seeds is None or isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        config = Simulation(N=N, t_max=t_max, **({} if seeds is None else {"seeds": seeds}), **options)
        seeds = list(range(config.seeds))
    else:
        listed = list(seeds) if isinstance(seeds, (list, tuple, range, np.ndarray)) else [seeds]
        seeds = [schema.parameters(Simulation)["teacher_seed"].replace(name="seed").check(seed) for seed in listed]
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        config = Simulation(N=N, t_max=t_max, seeds=len(seeds), **options)
    N, save_every = config.N, config.steps_per_save
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    n_saves = int(round(config.t_max * N)) // save_every
    if W_teacher is None:
        W_teacher, default_v_star = teacher_weights(setting, N, config.teacher_seed)
        v_star = default_v_star if v_star is None else v_star
    W_teacher = jnp.asarray(W_teacher, dtype=jnp.float64)
    v_star = jnp.ones(setting.M) if v_star is None else jnp.asarray(v_star, dtype=jnp.float64)
    if W0 is None:
        W0, default_v0 = student_weights(setting, N, seeds, config.init_scale, config.init_scale_v)
        v0 = default_v0 if v0 is None else v0
    W0 = jnp.asarray(W0, dtype=jnp.float64)
    v0 = jnp.broadcast_to(jnp.ones(setting.K) if v0 is None else jnp.asarray(v0, jnp.float64),
                          (len(seeds), setting.K))
    expected = {"W0": (len(seeds), setting.K, N), "W_teacher": (setting.M, N), "v_star": (setting.M,)}
    for name, value in (("W0", W0), ("W_teacher", W_teacher), ("v_star", v_star)):
        if value.shape != expected[name]:
            raise ValueError(f"{name} has shape {value.shape}; expected {expected[name]}")
    if b is None:
        b = feedback_vectors(setting, seeds)
    b = setting.check_feedback(b)
    if b is not None:
        b = jnp.broadcast_to(jnp.asarray(b), (len(seeds), setting.K))
    OrderParameters.from_weights(W0[0], W_teacher, v0[0], v_star)  # validates shapes
    static = sgd.structure(setting)
    rows = [{**sgd.flow_parameters_of(setting), "teacher": 0, "head": 0, "saves": n_saves, "threshold": -math.inf},
            sgd.rest_row(setting, 0, 0)]
    table = sgd.phase_table(setting, rows, v_star[None])
    if setting.input_spectrum is not None:
        try:
            spectrum.level_sizes(setting.input_spectrum, N)
        except ValueError as error:
            raise schema.ParameterError("N", str(error)) from None
    X_test = sgd.held_out_inputs(N, config.held_out, config.teacher_seed, setting)
    labels = sgd.held_out_labels(setting, W_teacher[None], v_star[None], X_test)
    heads = v0[:, None]
    records = [sgd.initial_records(static, (0,), W0, heads, W_teacher, v_star[None], b, X_test, labels)]
    carry = sgd.initial_carry(W0, heads, W_teacher, dtype)
    keys = sgd.seed_keys(seeds)
    chunks = np.array_split(np.arange(n_saves), min(n_saves, PROGRESS_CHUNKS) if progress else 1)
    for done, saves in enumerate(chunks, start=1):
        carry, saved = sgd.train(static, (0,), table, keys, carry, W_teacher, v_star[None], b, X_test,
                                 labels, jnp.asarray(saves), save_every=save_every, largest=setting.batch,
                                 varying=False, dtype=dtype)
        sgd.raise_if_diverged({"Q": saved[0], "R": saved[1], "v": saved[2]}, (saves + 1) * (save_every / N), seeds)
        records.append((*saved[:5], *saved[7:]))  # without the phase and its threshold
        if progress:
            jax.block_until_ready(carry)
            progress(done / len(chunks))
    Q, R, heads, eg, eg_test, *levels = (jnp.concatenate([first[:, None], *rest], axis=1)
                                         for first, *rest in zip(*records))
    S = len(seeds)
    T = jnp.broadcast_to(measure(W_teacher, W_teacher)[2], (S, setting.M, setting.M))
    t = jnp.arange(n_saves + 1) * (save_every / N)
    if setting.input_spectrum is not None:
        T_levels = measure_levels(W_teacher, W_teacher, spectrum.indicators(setting.input_spectrum, N))[2]
        levels = {"Q_levels": levels[0], "R_levels": levels[1],
                  "T_levels": jnp.broadcast_to(T_levels, (S, *T_levels.shape))}
    else:
        levels = {}
    return Trajectory(t, eg[..., 0], Q, R, heads[..., 0, :], T, jnp.broadcast_to(v_star, (S, setting.M)),
                      eg_test[..., 0], b, **levels)
