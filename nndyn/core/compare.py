"""Comparing two trajectories on the same time grid (typically simulation against ODE)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from nndyn.core.trajectory import Trajectory


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


def _check_alike(a: Trajectory, b: Trajectory) -> None:
    """Raise ValueError unless `a` and `b` are sampled at the same times and their order
    parameters have the same shapes up to broadcasting of leading batch dimensions."""
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
    """The statistical verdict of :func:`agreement`.

    **Fields:** `scores`, per quantity ("eg", "Q", "R", "v"), the largest |mean deviation| / SE
    over times and entries; `threshold`, the Bonferroni-corrected Student-t quantile; `passed`.
    """

    scores: dict[str, float]
    threshold: float
    comparisons: int

    @property
    def passed(self) -> bool:
        return max(self.scores.values()) <= self.threshold


def agreement(sim: Trajectory, ode: Trajectory, family_level: float = 1e-3,
              fields: tuple[str, ...] = ("eg", "Q", "R", "v")) -> Agreement:
    """Do simulations (S seeds) agree with their ODEs, each started from its seed's state?

    For every time t > t[0] and every entry X of the `fields` (default ε_g, Q, R, v; other
    trajectories, e.g. a ContinualTrajectory's eg_teacher, Q, R, heads), the seeds' deviations
    d_s = X_sim,s − X_ode,s (fluctuations of order 1/√N) must have a mean within z · SE,
    SE = std_s(d)/√S, where z is the two-sided Student-t quantile with S − 1 degrees of freedom at
    the family-wise level `family_level`, Bonferroni-corrected over all comparisons. Entries that
    do not fluctuate (a frozen v) are skipped.
    """
    from scipy import stats  # imported here: it costs a second at `import nndyn`

    if isinstance(sim, Trajectory):
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
    threshold = float(stats.t.ppf(1 - family_level / (2 * max(comparisons, 1)), df=seeds - 1))
    return Agreement(scores, threshold, comparisons)
