"""Online SGD of a student network on a teacher, at finite input dimension N.

Conventions of docs/conventions.md: inputs x ~ N(0, I_N), local fields λ = W x/√N, ρ = W* x/√N, labels
y = κ* v*·g*(ρ) + σ ξ, prediction ŷ = κ v·g(λ), error Δ = y − ŷ; per minibatch of B fresh samples

    W ← W − (λ/N) W + (η/√N) e ⊙ ⟨Δ g'(λ) xᵀ⟩_B,    v ← v − (λ_v/N) v + (η_v κ/N) ⟨Δ g(λ)⟩_B,

v only if trained, with e = κ v (backpropagation) or κ b (feedback alignment, b fixed); each step
advances time by 1/N. The whole run is one jitted `lax.scan` (inputs drawn in
blocks of steps) over groups of seeds; with a progress callback, a few such calls in a row.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from nndyn.core import normals, schema
from nndyn.core.errors import DivergenceError
from nndyn.core.flows import is_zero
from nndyn.core.integrate import ODEOptions
from nndyn.core.schema import parameter
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters, measure
from nndyn.core.trajectory import Trajectory
from nndyn.core.weights import feedback_vectors, student_weights, teacher_weights

MAX_BLOCK = 256  # steps whose inputs are drawn at once
SEED_GROUP = 4  # seeds stepped together (vmapped); groups run in turn, their weights stay in cache
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


def block_size(save_every: int) -> int:
    """The steps whose inputs are drawn at once: the largest divisor of `save_every` up to MAX_BLOCK."""
    return max(d for d in range(1, min(save_every, MAX_BLOCK) + 1) if save_every % d == 0)


def _records(setting: Setting, W, v, W_teacher, v_star, b, X_test):
    """What is recorded of one student W (K, N), v (K,) (feedback vector b (K,) or None): its
    order parameters, their ε_g, and the held-out error on the noise-free inputs X_test (P, N)."""
    kernels = setting.kernels
    N = W.shape[-1]
    Q, R, T = measure(W, W_teacher)
    state = {"Q": Q, "R": R, "v": v}
    args = setting.ode_args(T, v_star, b)
    prediction = setting.kappa * kernels.g(X_test @ W.T / jnp.sqrt(N)) @ v
    label = setting.kappa_star * kernels.g_star(X_test @ W_teacher.T / jnp.sqrt(N)) @ v_star
    return state, kernels.eg(state, args), 0.5 * jnp.mean((prediction - label) ** 2)


def sgd_step(kernels, fields, v, x, noise, *, lr, lr_v, sigma, kappa, v_star, feedback, decay, decay_v, batch,
             used=None):
    """One online-SGD step of docs/conventions.md on a minibatch: returns the new (fields, v).

    **Arguments:** `fields` (K + M, N), the student's W above the teacher's W* (so that one pass
    over x gives both local fields; the step leaves the teacher's rows exactly unchanged); `v`
    (K,); `x` (B, N) and `noise` (B,), float32 draws; `v_star` (M,) the teacher's readout times
    κ*; `feedback` (K,) the feedback vector e (κ v or κ b); the rates η (`lr`), η_v (`lr_v`, 0
    for a fixed v), σ, κ, λ (`decay`), λ_v (`decay_v`), numbers or traced scalars (a concrete 0
    decay is skipped); `batch` B; `used` (B_max,), when given, marks the samples of x that
    belong to the minibatch (the others, up to the largest batch of a protocol, are ignored).
    """
    K, N = v.shape[0], fields.shape[-1]
    x = x.astype(fields.dtype)  # converted inside the step's fusions, not stored as a copy
    local = x @ fields.T / jnp.sqrt(N)  # (B, K + M)
    lam, rho = local[:, :K], local[:, K:]
    delta = kernels.g_star(rho) @ v_star + sigma * noise - kappa * (kernels.g(lam) @ v)
    if used is not None:
        delta = delta * used
    coefficients = (feedback * delta[:, None] * kernels.g_prime(lam)).T  # (K, B)
    student = fields[:K]
    if not is_zero(decay):
        student = student - (decay / N) * student
    fields = fields.at[:K].set(student + (lr / (jnp.sqrt(N) * batch)) * (coefficients @ x))
    step_v = (lr_v * kappa / (N * batch)) * (kernels.g(lam).T @ delta)
    return fields, (v + step_v if is_zero(decay_v) else v + (step_v - (decay_v / N) * v))


@functools.partial(jax.jit, static_argnames=("setting",))
def _initial_records(setting: Setting, W, v, W_teacher, v_star, b, X_test):
    """`_records` of students (S, K, N), (S, K), feedback vectors (S, K) or None, before training."""
    return jax.vmap(lambda W, v, b: _records(setting, W, v, W_teacher, v_star, b, X_test))(W, v, b)


@functools.partial(jax.jit, static_argnames=("setting", "save_every", "dtype"))
def _train(setting: Setting, keys, W, v, b, W_teacher, v_star, X_test, saves, save_every: int, dtype):
    """Advance students (S, K, N), (S, K) in `dtype` (feedback vectors b (S, K) or None) through the
    save intervals `saves` (indices; the inputs of interval i are drawn from fold_in(key, i), so
    chunking a run does not change it); returns the final (W, v) and the records (measured in
    float64) at the end of each interval."""
    kernels = setting.kernels
    K, N = W.shape[-2:]
    block = block_size(save_every)
    lr_v = setting.lr_v if setting.train_second_layer else 0.0
    decay_v = setting.weight_decay_v if setting.train_second_layer else 0.0
    kappa = setting.kappa
    v_star_step = (setting.kappa_star * v_star).astype(dtype)

    def step(carry, sample, b):
        fields, v = carry
        x, noise = sample  # (B, N) and (B,) float32
        feedback = kappa * (v if b is None else b)
        return sgd_step(kernels, fields, v, x, noise, lr=setting.lr, lr_v=lr_v, sigma=setting.sigma, kappa=kappa,
                        v_star=v_star_step, feedback=feedback, decay=setting.weight_decay, decay_v=decay_v,
                        batch=setting.batch), None

    def one_seed(key, W, v, b):
        b_step = None if b is None else b.astype(dtype)

        def one_block(carry, key):
            key_x, key_noise = jax.random.split(key)
            # nndyn.normals draws JAX's float32 threefry stream, fused: most of a step's cost
            samples = (normals.normal(key_x, (block, setting.batch, N)),
                       normals.normal(key_noise, (block, setting.batch)))
            return jax.lax.scan(lambda carry, sample: step(carry, sample, b_step), carry, samples)[0], None

        def one_save(carry, key):
            carry = jax.lax.scan(one_block, carry, jax.random.split(key, save_every // block))[0]
            fields, v = carry
            W = fields[:K].astype(jnp.float64)
            return carry, _records(setting, W, v.astype(jnp.float64), W_teacher, v_star, b, X_test)

        save_keys = jax.vmap(lambda index: jax.random.fold_in(key, index))(saves)
        fields = jnp.concatenate([W, W_teacher.astype(dtype)])
        (fields, v), records = jax.lax.scan(one_save, (fields, v), save_keys)
        return (fields[:K], v), records

    return jax.lax.map(lambda args: one_seed(*args), (keys, W, v, b), batch_size=SEED_GROUP)


def raise_if_diverged(states: dict, times: np.ndarray, seeds: list[int]) -> None:
    """Raise DivergenceError at the first recorded time (`times` (n,)) at which an order
    parameter of `states` (each (S, n, ...)) of any seed is non-finite or exceeds ODEOptions'
    divergence threshold in magnitude."""
    threshold = ODEOptions.divergence_threshold
    for name in ("Q", "R", "v"):
        values = np.asarray(states[name])
        bad = (~np.isfinite(values) | (np.abs(values) > threshold)).reshape(values.shape[:2] + (-1,)).any(axis=-1)
        if bad.any():
            seed, index = min(np.argwhere(bad), key=lambda pair: pair[1])
            raise DivergenceError(float(times[index]), name, f"went non-finite or exceeded {threshold:g} in "
                                  f"magnitude (seed {seeds[seed]})", subject="the simulation")


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
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1) for seed in seeds])
    X_test = jax.random.normal(jax.random.PRNGKey(2**31 - 1 - config.teacher_seed), (config.held_out, N))
    records = [_initial_records(setting, W0, v0, W_teacher, v_star, b, X_test)]
    weights = (W0.astype(dtype), v0.astype(dtype))
    chunks = np.array_split(np.arange(n_saves), min(n_saves, PROGRESS_CHUNKS) if progress else 1)
    for done, saves in enumerate(chunks, start=1):
        weights, saved = _train(setting, keys, *weights, b, W_teacher, v_star, X_test,
                                jnp.asarray(saves), save_every=save_every, dtype=dtype)
        raise_if_diverged(saved[0], (saves + 1) * (save_every / N), seeds)
        records.append(saved)
        if progress:
            jax.block_until_ready(weights)
            progress(done / len(chunks))
    (states, eg, eg_test) = jax.tree_util.tree_map(
        lambda first, *rest: jnp.concatenate([first[:, None], *rest], axis=1), *records
    )
    S = len(seeds)
    T = jnp.broadcast_to(measure(W_teacher, W_teacher)[2], (S, setting.M, setting.M))
    t = jnp.arange(n_saves + 1) * (save_every / N)
    return Trajectory(t, eg, states["Q"], states["R"], states["v"], T,
                      jnp.broadcast_to(v_star, (S, setting.M)), eg_test, b)
