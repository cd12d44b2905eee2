"""The erf-mixture fallback's evaluation (derive/mixture.py fits it): the integrals of
ĝ(x) = c0 + Σ_j a_j G(s_j x), G(x) = erf(x/√2) the built-in erf activation, as weighted sums of
G's generated closed forms on rescaled blocks (docs/derivation.md)."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from nndyn.core.blocks import entry_positions
from nndyn.generated import erf  # pyright: ignore[reportMissingImports]

#: Per integral, each slot's factor (docs/conventions.md).
FACTORS = {"I2": ("g", "g"), "J2": ("g_prime", "g_prime"), "I3": ("g_prime", "u", "g"),
           "I4": ("g_prime", "g_prime", "g", "g")}


def erf_mixture(name: str, offset: float, terms: tuple[tuple[float, float], ...], *entries):
    """Integral `name` ("I2", "J2", "I3", "I4") of ĝ = `offset` + Σ_j a_j G(s_j x), (a_j, s_j)
    in `terms`, on the blocks whose entries c_pq (p ≤ q, row-major, broadcast arrays (...)) are
    `entries`; returns shape (...). Slot p of term j is G's slot on y_p = s_j u_p, weighted a_j
    (g) or a_j s_j (g'); the u slot of I3 is unscaled. The terms odd in c0 vanish (ĝ − c0 is odd):
    I2 gains c0², I4 gains c0² J2 on its first two slots."""
    factors = FACTORS[name]
    r = len(factors)
    a, s = (jnp.asarray(column) for column in zip(*terms))
    scales, weights = [], []
    for p, factor in enumerate(factors):
        shape = [1] * r
        shape[p] = -1
        scale, weight = (jnp.ones(1), jnp.ones(1)) if factor == "u" else (s, a * s if factor == "g_prime" else a)
        scales.append(scale.reshape(shape))
        weights.append(weight.reshape(shape))
    grid = [jnp.asarray(entry)[(..., *(None,) * r)] for entry in entries]
    scaled = [entry * scales[p] * scales[q] for entry, (p, q) in zip(grid, entry_positions(r))]
    value = jnp.sum(functools.reduce(jnp.multiply, weights) * erf.INTEGRALS[name](*scaled), axis=tuple(range(-r, 0)))
    if name == "I2":
        value = value + offset**2
    if name == "I4" and offset:
        value = value + offset**2 * erf_mixture("J2", 0.0, terms, entries[0], entries[1], entries[4])
    return value
