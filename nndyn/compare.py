"""Comparing two trajectories on the same time grid (typically simulation against ODE)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from nndyn.trajectory import Trajectory


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Comparison:
    """Agreement between trajectories `a` and `b` over time (leading batch dims broadcast).

    **Fields**, each of shape (..., n):

    - `eg_error`: |ε_g(a) − ε_g(b)|;
    - `Q_error`, `R_error`, `v_error`: the largest absolute entry-wise difference;
    - `Q_alignment`, `R_alignment`, `v_alignment`: cosine similarity of the flattened order
      parameters, ⟨A, B⟩ / (|A| |B|), the "alignment" of the blog's Figure 2 (1 = identical up to
      scale).
    """

    t: jax.Array
    eg_error: jax.Array
    Q_error: jax.Array
    R_error: jax.Array
    v_error: jax.Array
    Q_alignment: jax.Array
    R_alignment: jax.Array
    v_alignment: jax.Array


def _flat(x: jax.Array, core_ndim: int) -> jax.Array:
    return x.reshape(x.shape[: x.ndim - core_ndim] + (-1,))


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
    return jnp.sum(a * b, axis=-1) / jnp.where(norms > 0, norms, 1.0)


def compare(a: Trajectory, b: Trajectory) -> Comparison:
    """Compare trajectories `a` and `b` sampled at the same times."""
    if a.t.shape != b.t.shape or not bool(jnp.allclose(a.t, b.t)):
        raise ValueError("the trajectories are not sampled at the same times")
    fields = {}
    for name, core in (("Q", 2), ("R", 2), ("v", 1)):
        A, B = jnp.broadcast_arrays(_flat(getattr(a, name), core), _flat(getattr(b, name), core))
        fields[f"{name}_error"] = jnp.max(jnp.abs(A - B), axis=-1)
        fields[f"{name}_alignment"] = _cosine(A, B)
    return Comparison(t=a.t, eg_error=jnp.abs(a.eg - b.eg), **fields)
