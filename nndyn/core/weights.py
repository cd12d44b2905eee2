"""Networks' weights: the teacher and the students that simulations and sweeps start from, and
the order parameters of many students at once.

A teacher is W* (M, N) with i.i.d. N(0, 1) entries (so T ≈ I) and v* = 1, drawn from
PRNGKey(teacher_seed). A student of seed s is W (K, N) with i.i.d. N(0, init_scale²) entries from
split(PRNGKey(s))[0], and v = 1 for the soft committee machine or N(0, init_scale_v²) entries
from split(PRNGKey(s))[1].
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import spectrum
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters, measure


def teacher_weights(setting: Setting, N: int, seed: int = 0):
    """A teacher: W* (M, N) with i.i.d. N(0, 1) entries (so T ≈ I) and v* = 1 (M,); with a
    `teacher_spectrum`, the entries on level ℓ's coordinates N(0, τ_ℓ) (T^ℓ ≈ τ_ℓ f_ℓ I)."""
    W_teacher = jax.random.normal(jax.random.PRNGKey(seed), (setting.M, N))
    levels, teacher = setting.input_spectrum, setting.teacher_spectrum
    if levels is not None and teacher is not None:
        W_teacher = W_teacher * jnp.asarray(spectrum.teacher_scales(levels, teacher, N))
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


def feedback_vectors(setting: Setting, seeds):
    """The feedback vectors b (S, K) of the students of `seeds` for feedback alignment (i.i.d.
    N(0, 1), from fold_in(PRNGKey(seed), 2)), or None for backpropagation."""
    if setting.feedback != "alignment":
        return None
    return np.asarray(_feedback(jnp.asarray(list(seeds)), setting.K))


@functools.partial(jax.jit, static_argnames=("K",))
def _feedback(seeds, K: int):
    return jax.vmap(lambda seed: jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 2), (K,)))(seeds)


def initial_states(setting: Setting, N, seeds, init_scale) -> OrderParameters:
    """The order parameters of the students of `seeds` (P,) against the teacher (seed 0) in input
    dimension N (P,) at scales `init_scale` (P,), batched (P, ...), in NumPy: each student is
    drawn by `student_weights`, the teacher once per distinct N. K and M are `setting`'s."""
    N, seeds, init_scale = (np.asarray(value) for value in (N, seeds, init_scale))
    P, K, M = len(seeds), setting.K, setting.M
    fields = {"Q": np.empty((P, K, K)), "R": np.empty((P, K, M)), "T": np.empty((P, M, M)),
              "v": np.empty((P, K)), "v_star": np.empty((P, M))}
    for dimension in np.unique(N):
        members = np.flatnonzero(N == dimension)
        W_teacher, v_star = (np.asarray(value) for value in teacher_weights(setting, int(dimension)))
        W, v = (np.asarray(value) for value in student_weights(setting, int(dimension), seeds[members].tolist(),
                                                                init_scale[members]))
        fields["Q"][members], fields["R"][members], fields["T"][members] = measure(W, W_teacher)
        fields["v"][members], fields["v_star"][members] = v, v_star
    states = OrderParameters(**fields, b=feedback_vectors(setting, seeds.tolist()))
    states.validate()
    return states
