"""Online SGD of students on teachers at finite input dimension N, through a table of phases: the
one scan behind `simulate` (a table of one phase) and `simulate_protocol`.

Conventions of docs/conventions.md: inputs x ~ N(0, I_N), or x ~ N(0, Σ) with Σ diagonal in the
coordinates' basis for structured inputs (`Setting.input_spectrum`: x = √ρ z coordinate by
coordinate, O(N) per sample), local fields λ = W x/√N (students), ρ = W* x/√N (every teacher
unit). Per minibatch of B fresh samples the error Δ, the updates F
and G and the decay rates are evaluated from the symbolic step the flows are derived from
(`nndyn.generated.flows.STEP`, printed from nndyn.derive.flows.sgd_step), with the readouts a
and the feedback vector e of `nndyn.core.flows.readouts` (the ODE's):

    W ← W − (λ/N) W + (1/(√N B)) Σ_B F xᵀ,    v ← v + train_v [(1/(N B)) Σ_B G − (λ_v/N) v],

each step advancing time by 1/N. A parameter of the step therefore reaches the ODE and SGD
together or neither.

Rates are data: η, η_v, σ, λ, λ_v, τ, the active teacher's readout, the head and the threshold
of each phase are rows of a table (`phase_table`) traced into one compiled program, so a new
learning rate does not recompile; only shapes (K, M, N, B, the number of phases), the
activations, κ, the feedback rule and whether v trains are static (`structure`).

Random numbers: the inputs of save interval i of a seed are drawn from fold_in(key, i), key =
fold_in(PRNGKey(seed), 1), in draws of `steps_per_draw(save_every)` steps (`nndyn.core.normals`),
so a seed's run does not depend on the seeds run with it nor on how it is chunked.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import cache, flows, normals, schema, spectrum, state
from nndyn.core.errors import DivergenceError
from nndyn.core.flows import readouts
from nndyn.core.kernels import step_table
from nndyn.core.setting import Setting
from nndyn.core.solver import ODEOptions
from nndyn.core.state import measure, measure_levels

MAX_DRAW = 256  # steps whose inputs are drawn at once
SEED_GROUP = 4  # seeds stepped together (vmapped); groups run in turn, their weights stay in cache
#: The flow parameters of a phase, as the step and the table name them: those of the schema
#: (`Setting`'s fields declared flow=True) and τ of the annealing η(t) = η/(1 + (t − t_start)/τ).
FLOW_PARAMETERS = (*(name for name, rule in schema.parameters(Setting).items() if rule.flow), "tau")


def steps_per_draw(save_every: int) -> int:
    """The steps whose inputs are drawn at once: the largest divisor of `save_every` up to MAX_DRAW."""
    return max(d for d in range(1, min(save_every, MAX_DRAW) + 1) if save_every % d == 0)


def structure(setting: Setting) -> Setting:
    """What of `setting` shapes the compiled programs (a static jit argument): the setting with
    its flow parameters (the schema's flow fields) at fixed values, each its default or 1 where it
    has none, so that settings apart only in flow parameters share programs."""
    return setting.replace(**{name: 1 if rule.required or rule.default is None else rule.default
                              for name, rule in schema.parameters(Setting).items() if rule.flow})


def flow_parameters_of(setting: Setting) -> dict:
    """The `FLOW_PARAMETERS` of `setting`, without annealing (τ = inf): a phase-table row's."""
    return {**{name: getattr(setting, name) for name in FLOW_PARAMETERS[:-1]}, "tau": math.inf}


def masked_readout(v_star, teacher):
    """The joint readout (..., count·M) of teacher `teacher` of readouts v_star (..., count, M):
    its v* on its units, zero elsewhere."""
    count = v_star.shape[-2]
    return (v_star * (jnp.arange(count) == teacher)[:, None]).reshape(v_star.shape[:-2] + (-1,))


def phase_table(setting: Setting, rows: list[dict], v_star) -> dict:
    """The table the scan reads, one entry per phase (and the caller's last row for "over").

    **Arguments:** `rows`, per phase: the `FLOW_PARAMETERS` (τ = inf without annealing), "teacher" (its
    index), "head", "saves" (the most save intervals it lasts) and "threshold" (−inf for none);
    `v_star` (count, M) the teachers' readouts. **Returns:** arrays (P,) per rate and key, and
    "v_star" (P, count·M), the active teacher's readout masked to its units.
    """
    table = {name: jnp.asarray([float(row[name]) for row in rows]) for name in (*FLOW_PARAMETERS, "threshold")}
    table |= {name: jnp.asarray([int(row[name]) for row in rows]) for name in ("teacher", "head", "saves")}
    table["v_star"] = jnp.stack([masked_readout(jnp.asarray(v_star), row["teacher"]) for row in rows])
    table["train_v"] = jnp.full(len(rows), 1.0 if setting.train_second_layer else 0.0)
    return table


def step_parameters(setting: Setting, row: dict) -> dict:
    """The flow parameters `sgd_step` takes, from a row of the phase table: the row's and κ, κ*."""
    return {"kappa": setting.kappa, "kappa_star": setting.kappa_star,
            **{name: row[name] for name in (*FLOW_PARAMETERS, "train_v", "v_star")}}


def sgd_step(kernels, weights, v, x, xi, parameters: dict, b=None, used=None):
    """One online-SGD step on a minibatch (module docstring): returns the new (weights, v).

    **Arguments:** `weights` (K + M', N), the student's W above the teachers' W* (so that one
    pass over x gives every local field; the step leaves the teachers' rows unchanged); `v`
    (K,); `x` (B, N) and `xi` (B,), float32 draws; `parameters`, the flow parameters, numbers or
    traced scalars: "lr", "lr_v", "sigma", "batch", "weight_decay", "weight_decay_v", "kappa", "kappa_star",
    "train_v", and "v_star" (M',), the active teacher's readout on the teachers' rows; `b` (K,)
    the feedback vector of feedback alignment, or None; `used` (B,), when given, marks the
    samples of x in the minibatch (the others, up to a protocol's largest batch, are ignored).
    """
    step = step_table()
    K, N = v.shape[0], weights.shape[-1]
    # float32 steps stay float32
    parameters = {name: jnp.asarray(value, weights.dtype) for name, value in parameters.items()}
    x = x.astype(weights.dtype)  # converted inside the step's fusions, not stored as a copy
    local = x @ weights.T / jnp.sqrt(N)  # (B, K + M')
    lam, rho = local[:, :K], local[:, K:]
    g, g_prime = kernels.g(lam), kernels.g_prime(lam)
    readout = readouts(v, parameters["v_star"], b, parameters["kappa"], parameters["kappa_star"])
    values = dict(parameters, signal=jnp.concatenate([g, kernels.g_star(rho)], axis=-1) @ readout["a"], xi=xi,
                  g=g, g_prime=g_prime, e=readout["e"])
    delta = _evaluate(step["delta"], values)
    if used is not None:
        delta = delta * used
    values["delta"] = delta[:, None]
    F, G = _evaluate(step["F"], values), _evaluate(step["G"], values)
    student = weights[:K]
    student = (student - (_evaluate(step["decay"], values) / N) * student
               + (F.T @ x) / (jnp.sqrt(N) * parameters["batch"]))
    step_v = jnp.sum(G, axis=0) / (N * parameters["batch"]) - (_evaluate(step["decay_v"], values) / N) * v
    return weights.at[:K].set(student), v + parameters["train_v"] * step_v


def _evaluate(entry, values: dict):
    """A quantity of the generated step, (arguments, function), on `values` by name."""
    arguments, function = entry
    return function(*(values[name] for name in arguments))


def eg_per_teacher(setting: Setting, heads_of: tuple[int, ...], Q, R, heads, T, v_star, b):
    """ε_g on every teacher (count,) of a state Q (K, K), R (K, count·M), heads (H, K), each
    teacher t with its head heads_of[t]; T the joint teacher overlap, v_star (count, M); with
    structured inputs Q, R, T per level (L, ...)."""
    kernels = setting.kernels

    def one(teacher, head):
        args = setting.ode_args(T, masked_readout(v_star, teacher), b)
        return kernels.eg({"Q": Q, "R": R, "v": heads[head]}, args)

    return jax.vmap(one)(jnp.arange(len(heads_of)), jnp.asarray(heads_of))


def input_scales(setting: Setting, N: int):
    """The standard deviation of each input coordinate (N,) for structured inputs (a constant of
    the compiled program), or None for isotropic ones."""
    levels = setting.input_spectrum
    return None if levels is None else jnp.asarray(spectrum.coordinate_scales(levels, N))


def held_out_labels(setting: Setting, W_teachers, v_star, X_test):
    """The noise-free labels (P, count) of every teacher on the held-out inputs X_test (P, N):
    κ* v*_t·g*(W*_t x/√N); W_teachers (count, M, N), v_star (count, M)."""
    N = X_test.shape[-1]
    teacher_fields = jnp.einsum("pn,tmn->ptm", X_test, W_teachers) / jnp.sqrt(N)
    return setting.kappa_star * jnp.einsum("ptm,tm->pt", setting.kernels.g_star(teacher_fields), v_star)


def _records(setting: Setting, heads_of, W, heads, W_joint, v_star, b, X_test, labels):
    """What is recorded of one student W (K, N), heads (H, K): Q, R, the heads, ε_g of its order
    parameters on every teacher, and the held-out error on every teacher (measured in float64);
    for structured inputs also Q and R per level (L, K, K), (L, K, M) (and ε_g of the fields'
    covariance Σ_ℓ ρ_ℓ Ω^ℓ)."""
    N = W.shape[-1]
    Q, R, T = measure(W, W_joint)
    overlaps = (Q, R, T)
    if setting.input_spectrum is not None:  # ε_g of the fields' covariance Σ_ℓ ρ_ℓ Ω^ℓ, from the overlaps per level
        overlaps = measure_levels(W, W_joint, jnp.asarray(spectrum.indicators(setting.input_spectrum, N)))
    eg = eg_per_teacher(setting, heads_of, overlaps[0], overlaps[1], heads, overlaps[2], v_star, b)
    prediction = setting.kappa * setting.kernels.g(X_test @ W.T / jnp.sqrt(N)) @ heads.T  # (P, H)
    eg_test = 0.5 * jnp.mean((prediction[:, jnp.asarray(heads_of)] - labels) ** 2, axis=0)
    return Q, R, heads, eg, eg_test, *(overlaps[:2] if setting.structured else ())


@functools.partial(jax.jit, static_argnames=("setting", "heads_of"))
def initial_records(setting: Setting, heads_of, W, heads, W_joint, v_star, b, X_test, labels):
    """`_records` of students (S, K, N), heads (S, H, K), feedback vectors (S, K) or None;
    X_test already drawn with the input spectrum (`held_out_inputs`)."""
    return jax.vmap(lambda W, heads, b: _records(setting, heads_of, W, heads, W_joint, v_star, b, X_test, labels))(
        W, heads, b)


def initial_carry(W, heads, W_joint, dtype):
    """The scan's state of students (S, K, N), heads (S, H, K) before training: the stacked
    weights (S, K + count·M, N), the heads, the step count, the phase and its first save."""
    S = W.shape[0]
    weights = jnp.concatenate([W, jnp.broadcast_to(W_joint, (S,) + W_joint.shape)], axis=1).astype(dtype)
    zeros = jnp.zeros(S, dtype=int)
    return weights, heads.astype(dtype), zeros, zeros, zeros


def train(setting: Setting, heads_of: tuple[int, ...], table: dict, keys, carry, W_joint, v_star, b, X_test, labels,
          saves, *, save_every: int, largest: int, varying: bool, dtype):
    """`_train` through the persistent cache (`nndyn.core.cache`): one exported program per
    structure and shape, so that a fresh process skips its tracing."""
    dtype = jnp.dtype(dtype)

    def program(table, keys, carry, W_joint, v_star, b, X_test, labels, saves):
        return _train(setting, heads_of, table, keys, carry, W_joint, v_star, b, X_test, labels, saves,
                      save_every=save_every, largest=largest, varying=varying, dtype=dtype)

    sources = (__file__, normals.__file__, spectrum.__file__, state.__file__, flows.__file__,
               *setting.kernels.sources)
    return cache.call(program, (table, keys, carry, W_joint, v_star, b, X_test, labels, saves),
                      static=(setting, heads_of, save_every, largest, varying, str(dtype)), sources=sources)


@functools.partial(jax.jit, static_argnames=("setting", "heads_of", "save_every", "largest", "varying", "dtype"))
def _train(setting: Setting, heads_of: tuple[int, ...], table: dict, keys, carry, W_joint, v_star, b, X_test, labels,
           saves, *, save_every: int, largest: int, varying: bool, dtype):
    """Advance students through the save intervals `saves` (indices) of the phase `table`, each
    seed switching phases on its own (at a save, when its phase's saves are done or ε_g on its
    teacher fell below its threshold); returns the new carry (`initial_carry`) and the records at
    the end of each interval: Q, R, heads, ε_g and the held-out error per teacher, the phase
    trained, and whether its threshold was met.

    **Arguments:** `setting`, the `structure` of the run; `heads_of` the head of each teacher;
    `keys` (S, 2) the seeds' keys; `W_joint` (count·M, N) and `v_star` (count, M) the teachers;
    `b` (S, K) or None; `X_test` (P, N) and `labels` (P, count) the held-out set; `largest`,
    the samples drawn per step (the largest batch of any phase); `varying`, whether phases
    train on batches apart (then a mask picks each step's samples); `dtype`, the precision of
    the steps (records are measured in float64).
    """
    kernels = setting.kernels
    K, N = setting.K, X_test.shape[-1]
    draw = steps_per_draw(save_every)
    scales = input_scales(setting, N)
    phases = table["saves"].shape[0] - 1  # the last row is "over"

    def one_seed(key, carry, b):
        b_step = None if b is None else b.astype(dtype)

        def one_save(carry, index):
            weights, heads, count, phase, start = carry
            row = {name: value[phase] for name, value in table.items()}
            parameters = step_parameters(setting, row)

            def one_step(inner, sample):
                weights, heads, count = inner
                x, xi = sample
                anneal = 1.0 / (1.0 + (count - start * save_every) / N / row["tau"])
                annealed = parameters | {"lr": anneal * parameters["lr"], "lr_v": anneal * parameters["lr_v"]}
                used = (jnp.arange(largest) < row["batch"]) if varying else None
                weights, v = sgd_step(kernels, weights, heads[row["head"]], x, xi, annealed, b_step, used)
                return (weights, heads.at[row["head"]].set(v), count + 1), None

            def one_draw(inner, key):
                key_x, key_xi = jax.random.split(key)
                # nndyn.normals draws JAX's float32 threefry stream, fused: most of a step's cost
                x = normals.normal(key_x, (draw, largest, N))
                x = x if scales is None else x * scales.astype(x.dtype)  # structured inputs: x = √ρ z
                samples = (x, normals.normal(key_xi, (draw, largest)))
                return jax.lax.scan(one_step, inner, samples)[0], None

            weights, heads, count = jax.lax.scan(
                one_draw, (weights, heads, count), jax.random.split(jax.random.fold_in(key, index), save_every // draw)
            )[0]
            records = _records(setting, heads_of, weights[:K].astype(jnp.float64), heads.astype(jnp.float64), W_joint,
                               v_star, b, X_test, labels)
            eg = records[3]
            met = eg[row["teacher"]] < row["threshold"]
            moved = ((index + 1 - start >= row["saves"]) | met) & (phase < phases)
            carry = (weights, heads, count, phase + moved, jnp.where(moved, index + 1, start))
            return carry, (*records[:5], phase, met, *records[5:])

        return jax.lax.scan(one_save, carry, saves)

    return jax.lax.map(lambda args: one_seed(*args), (keys, carry, b), batch_size=SEED_GROUP)


def seed_keys(seeds) -> jax.Array:
    """The keys (S, 2) of the seeds' data streams: fold_in(PRNGKey(seed), 1)."""
    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1) for seed in seeds])


def held_out_inputs(N: int, held_out: int, teacher_seed: int, setting: Setting | None = None) -> jax.Array:
    """The held-out inputs (held_out, N) of a run whose teacher is drawn from `teacher_seed`,
    with the input spectrum of `setting` when it has one."""
    X = jax.random.normal(jax.random.PRNGKey(2**31 - 1 - teacher_seed), (held_out, N))
    scales = None if setting is None else input_scales(setting, N)
    return X if scales is None else X * scales


def raise_if_diverged(states: dict, times: np.ndarray, seeds: list[int]) -> None:
    """Raise DivergenceError at the first recorded time (`times` (n,)) at which an order
    parameter of `states` (each (S, n, ...)) of any seed is non-finite or exceeds
    ODEOptions' divergence threshold in magnitude."""
    threshold = ODEOptions.divergence_threshold
    for name, value in states.items():
        values = np.asarray(value)
        bad = ~np.isfinite(values) | (np.abs(values) > threshold)
        bad = bad.reshape(values.shape[:2] + (-1,)).any(axis=-1)
        if bad.any():
            seed, index = min(np.argwhere(bad), key=lambda pair: pair[1])
            raise DivergenceError(float(times[index]), name, f"went non-finite or exceeded {threshold:g} "
                                  f"in magnitude (seed {seeds[seed]})", subject="the simulation")


def rest_row(setting: Setting, teacher: int, head: int) -> dict:
    """The table's last row: the protocol is over and nothing learns (the student rests)."""
    return {**dict.fromkeys(FLOW_PARAMETERS, 0.0), "batch": float(setting.batch), "tau": math.inf, "teacher": teacher,
            "head": head, "saves": 2**30, "threshold": -math.inf}
