"""Online SGD of a student network on a teacher, at finite input dimension N.

Conventions of DESIGN.md: inputs x ~ N(0, I_N), local fields λ = W x/√N, ρ = W* x/√N, labels
y = v*·g(ρ) + σ ξ, prediction ŷ = v·g(λ), error Δ = y − ŷ; per minibatch of B fresh samples

    W ← W + (η/√N) v ⊙ ⟨Δ g'(λ) xᵀ⟩_B,    v ← v + (η_v/N) ⟨Δ g(λ)⟩_B   (v only if trained),

and each step advances time by 1/N. The whole run is one jitted `lax.scan` (inputs drawn in
blocks of steps) over groups of seeds; with a progress callback, a few such calls in a row.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nndyn import normals
from nndyn.setting import Setting
from nndyn.state import OrderParameters
from nndyn.trajectory import Trajectory

MAX_BLOCK = 256  # steps whose inputs are drawn at once
SEED_GROUP = 4  # seeds stepped together (vmapped); groups run in turn, their weights stay in cache
PROGRESS_CHUNKS = 20  # a run with a progress callback is split into this many jitted calls


def _block_size(save_every: int) -> int:
    return max(d for d in range(1, min(save_every, MAX_BLOCK) + 1) if save_every % d == 0)


def teacher_weights(setting: Setting, N: int, seed: int = 0):
    """A teacher: W* (M, N) with i.i.d. N(0, 1) entries (so T ≈ I) and v* = 1 (M,)."""
    W_teacher = jax.random.normal(jax.random.PRNGKey(seed), (setting.M, N))
    return W_teacher, jnp.ones(setting.M)


def student_weights(setting: Setting, N: int, seeds, init_scale, init_scale_v=None):
    """Students, one per seed: W (S, K, N) with i.i.d. N(0, init_scale²) entries, and v (S, K)
    equal to 1 for the soft committee machine, else N(0, init_scale_v²) (default init_scale).
    The scales may be numbers or arrays (S,), one per seed."""
    scale_v = init_scale if init_scale_v is None else init_scale_v
    W, v = _unit_students(jnp.asarray(list(seeds)), setting.K, N, setting.train_second_layer)
    scale, scale_v = (jnp.broadcast_to(jnp.asarray(value, jnp.float64), (len(W),)) for value in (init_scale, scale_v))
    return scale[:, None, None] * W, (scale_v[:, None] * v if setting.train_second_layer else v)


@functools.partial(jax.jit, static_argnames=("K", "N", "trained"))
def _unit_students(seeds, K: int, N: int, trained: bool):
    """Unit-scale students of `seeds` (S,): W (S, K, N) from split(PRNGKey(seed))[0], v (S, K)
    from its [1] (ones when not trained)."""
    def one(seed):
        key_W, key_v = jax.random.split(jax.random.PRNGKey(seed), 2)
        return jax.random.normal(key_W, (K, N)), jax.random.normal(key_v, (K,)) if trained else jnp.ones(K)

    return jax.vmap(one)(seeds)


def _records(setting: Setting, W, v, W_teacher, v_teacher, X_test):
    """What is recorded of one student W (K, N), v (K,): its order parameters, their ε_g, and
    the held-out error on the noise-free inputs X_test (P, N)."""
    kernels = setting.kernels
    N = W.shape[-1]
    state = {"Q": W @ W.T / N, "R": W @ W_teacher.T / N, "v": v}
    args = setting.ode_args(W_teacher @ W_teacher.T / N, v_teacher)
    prediction = kernels.g(X_test @ W.T / jnp.sqrt(N)) @ v
    label = kernels.g(X_test @ W_teacher.T / jnp.sqrt(N)) @ v_teacher
    return state, kernels.eg(state, args), 0.5 * jnp.mean((prediction - label) ** 2)


@functools.partial(jax.jit, static_argnames=("setting",))
def _initial_records(setting: Setting, W, v, W_teacher, v_teacher, X_test):
    """`_records` of students (S, K, N), (S, K) before training."""
    return jax.vmap(lambda W, v: _records(setting, W, v, W_teacher, v_teacher, X_test))(W, v)


@functools.partial(jax.jit, static_argnames=("setting", "save_every", "dtype"))
def _train(setting: Setting, keys, W, v, W_teacher, v_teacher, X_test, saves, save_every: int, dtype):
    """Advance students (S, K, N), (S, K) in `dtype` through the save intervals `saves` (indices; the
    inputs of interval i are drawn from fold_in(key, i), so chunking a run does not change it);
    returns the final (W, v) and the records (measured in float64) at the end of each interval."""
    kernels = setting.kernels
    K, N = W.shape[-2:]
    sqrt_N = jnp.sqrt(N)
    block = _block_size(save_every)
    lr_v = setting.lr_v if setting.train_second_layer else 0.0
    v_teacher_step = v_teacher.astype(dtype)

    def step(carry, sample):
        # fields (K + M, N): the student's W above the teacher's W*, so that one pass over x
        # gives both local fields; the update leaves the teacher's rows exactly unchanged
        fields, v = carry
        x, noise = sample  # (B, N) and (B,) float32
        x = x.astype(fields.dtype)  # converted inside the step's fusions, not stored as a copy
        local = x @ fields.T / sqrt_N  # (B, K + M)
        lam, rho = local[:, :K], local[:, K:]
        delta = kernels.g(rho) @ v_teacher_step + setting.sigma * noise - kernels.g(lam) @ v
        coefficients = (v * delta[:, None] * kernels.g_prime(lam)).T  # (K, B)
        fields = fields.at[:K].add((setting.lr / (sqrt_N * setting.batch)) * (coefficients @ x))
        v = v + (lr_v / (N * setting.batch)) * (kernels.g(lam).T @ delta)
        return (fields, v), None

    def one_block(carry, key):
        key_x, key_noise = jax.random.split(key)
        # nndyn.normals draws JAX's float32 threefry stream, fused: most of a step's cost
        samples = (normals.normal(key_x, (block, setting.batch, N)),
                   normals.normal(key_noise, (block, setting.batch)))
        return jax.lax.scan(step, carry, samples)[0], None

    def one_save(carry, key):
        carry = jax.lax.scan(one_block, carry, jax.random.split(key, save_every // block))[0]
        fields, v = carry
        W = fields[:K].astype(jnp.float64)
        return carry, _records(setting, W, v.astype(jnp.float64), W_teacher, v_teacher, X_test)

    def one_seed(key, W, v):
        save_keys = jax.vmap(lambda index: jax.random.fold_in(key, index))(saves)
        fields = jnp.concatenate([W, W_teacher.astype(dtype)])
        (fields, v), records = jax.lax.scan(one_save, (fields, v), save_keys)
        return (fields[:K], v), records

    return jax.lax.map(lambda args: one_seed(*args), (keys, W, v), batch_size=SEED_GROUP)


def simulate(setting: Setting, N: int, t_max: float, *, seeds=4, save_every: int | None = None,
             init_scale: float = 1.0, init_scale_v: float | None = None, teacher_seed: int = 0,
             held_out: int = 2000, W0=None, v0=None, W_teacher=None, v_teacher=None,
             dtype=jnp.float64, progress=None) -> Trajectory:
    """Train students by online SGD and record their order parameters.

    **Arguments:**

    - `setting`: the :class:`~nndyn.Setting` (η, η_v, σ, B, trained second layer, activation).
    - `N`: the input dimension.
    - `t_max`: the training time; round(t_max·N) steps are taken (rounded down to whole saves).
    - `seeds`: a count S (seeds 0..S-1) or a sequence of seeds; each seed draws its own
      student and its own data stream (so a seed's run does not depend on the others run
      with it); groups of SEED_GROUP seeds are stepped together in one jitted program.
    - `save_every`: steps between records (default N, i.e. once per unit of time).
    - `init_scale`, `init_scale_v`: the students' initial weight scales (see
      :func:`student_weights`); or pass `W0` (S, K, N) and `v0` (S, K) directly.
    - `teacher_seed`, `W_teacher` (M, N), `v_teacher` (M,): the teacher, shared by all seeds.
    - `held_out`: noise-free test examples on which `eg_test` is measured.
    - `dtype`: the precision of the SGD steps (the teacher's fields included), float64 (default)
      or float32 (about 1.2× faster on CPU; the inputs are float32 draws either way, and the
      order parameters are measured in float64; benchmarks/RESULTS.md measures the difference).
    - `progress`: None, or a callable given the fraction done after each of up to
      PROGRESS_CHUNKS chunks of the run (the results do not depend on the chunking).

    **Returns:** a :class:`~nndyn.Trajectory` with a leading seed axis; start the ODE from its
    `initial_state()` to compare with exactly the same initial order parameters.
    """
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"N must be an integer >= 1, got {N!r}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    save_every = N if save_every is None else save_every
    if not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be an integer >= 1, got {save_every!r}")
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    n_saves = int(round(t_max * N)) // save_every
    if n_saves < 1:
        raise ValueError(f"t_max={t_max} is shorter than one save interval ({save_every} steps)")
    if W_teacher is None:
        W_teacher, default_v_teacher = teacher_weights(setting, N, teacher_seed)
        v_teacher = default_v_teacher if v_teacher is None else v_teacher
    W_teacher = jnp.asarray(W_teacher, dtype=jnp.float64)
    v_teacher = jnp.ones(setting.M) if v_teacher is None else jnp.asarray(v_teacher, dtype=jnp.float64)
    if W0 is None:
        W0, default_v0 = student_weights(setting, N, seeds, init_scale, init_scale_v)
        v0 = default_v0 if v0 is None else v0
    W0 = jnp.asarray(W0, dtype=jnp.float64)
    v0 = jnp.broadcast_to(jnp.ones(setting.K) if v0 is None else jnp.asarray(v0, jnp.float64),
                          (len(seeds), setting.K))
    expected = {"W0": (len(seeds), setting.K, N), "W_teacher": (setting.M, N), "v_teacher": (setting.M,)}
    for name, value in (("W0", W0), ("W_teacher", W_teacher), ("v_teacher", v_teacher)):
        if value.shape != expected[name]:
            raise ValueError(f"{name} has shape {value.shape}; expected {expected[name]}")
    OrderParameters.from_weights(W0[0], W_teacher, v0[0], v_teacher)  # validates shapes
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1) for seed in seeds])
    X_test = jax.random.normal(jax.random.PRNGKey(2**31 - 1 - teacher_seed), (held_out, N))
    records = [_initial_records(setting, W0, v0, W_teacher, v_teacher, X_test)]
    weights = (W0.astype(dtype), v0.astype(dtype))
    chunks = np.array_split(np.arange(n_saves), min(n_saves, PROGRESS_CHUNKS) if progress else 1)
    for done, saves in enumerate(chunks, start=1):
        weights, saved = _train(setting, keys, *weights, W_teacher, v_teacher, X_test,
                                jnp.asarray(saves), save_every=save_every, dtype=dtype)
        records.append(saved)
        if progress:
            jax.block_until_ready(weights)
            progress(done / len(chunks))
    (states, eg, eg_test) = jax.tree_util.tree_map(
        lambda first, *rest: jnp.concatenate([first[:, None], *rest], axis=1), *records
    )
    S = len(seeds)
    T = jnp.broadcast_to(W_teacher @ W_teacher.T / N, (S, setting.M, setting.M))
    t = jnp.arange(n_saves + 1) * (save_every / N)
    return Trajectory(t, eg, states["Q"], states["R"], states["v"], T,
                      jnp.broadcast_to(v_teacher, (S, setting.M)), eg_test)
