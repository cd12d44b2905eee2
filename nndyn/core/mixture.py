"""The erf-mixture fallback's evaluation (derive/mixture.py fits it): the integrals of
ĝ(x) = c0 + Σ_j a_j G(s_j x), G(x) = erf(x/√2) the built-in erf activation, as weighted sums of
G's generated closed forms on rescaled blocks (docs/derivation.md). I4, n⁴ terms per block, is
evaluated in a factorised form of G's closed form (:func:`_factorised_I4`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from nndyn.core.blocks import entry_positions
from nndyn.core.special import safe_arcsin
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
    a, s = (jnp.asarray(column) for column in zip(*terms))
    if name == "I4":
        value = _factorised_I4(a, s, *entries)
        if offset:
            value = value + offset**2 * erf_mixture("J2", 0.0, terms, entries[0], entries[1], entries[4])
        return value
    factors = FACTORS[name]
    r = len(factors)
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
    return value


def _factorised_I4(a, s, c00, c01, c02, c03, c11, c12, c13, c22, c23, c33):
    """Σ_jklm a_j s_j a_k s_k a_l a_m I4_G(S C S), S = diag(s_j, s_k, s_l, s_m), shape (...).

    G's closed form is I4_G(C) = 4/(π² √D) arcsin(Λ_23 / √((D + Λ_22)(D + Λ_33))) with
    D = det(1 + C_01) and Λ_lm = D (c_lm − c_l,01 (1 + C_01)⁻¹ c_01,m) for l, m ∈ {2, 3}, C_01
    the block's first two slots: the generated erf.I4's numerator and radicands, regrouped. On the
    rescaled block D and Λ_lm/(s_l s_m) depend on (j, k) only, so per (j, k) three numbers are
    computed once and each of the n⁴ terms costs one arcsin and three products
    (tests/test_mixture.py ties this to G's closed form on each rescaled block)."""
    def jk(entry):  # (...) -> (..., 1, 1) against the (j, k) axes
        return jnp.asarray(entry)[..., None, None]

    s_j, s_k = s[:, None], s[None, :]
    d00, d01, d11 = jk(c00) * s_j**2, jk(c01) * s_j * s_k, jk(c11) * s_k**2
    e02, e03, e12, e13 = jk(c02) * s_j, jk(c03) * s_j, jk(c12) * s_k, jk(c13) * s_k
    D = (1 + d00) * (1 + d11) - d01**2

    def schur(c_lm, e0l, e1l, e0m, e1m):  # D (c_lm − c_l,01 (1 + C_01)⁻¹ c_01,m), shape (..., j, k)
        return jk(c_lm) * D - (e0l * (1 + d11) * e0m - d01 * (e0l * e1m + e1l * e0m) + e1l * (1 + d00) * e1m)

    L23, L22, L33 = schur(c23, e02, e12, e03, e13), schur(c22, e02, e12, e02, e12), schur(c33, e03, e13, e03, e13)
    P = jax.lax.rsqrt(D[..., None] + s**2 * L22[..., None])  # (..., j, k, l)
    Q = jax.lax.rsqrt(D[..., None] + s**2 * L33[..., None])  # (..., j, k, m)
    arcsins = safe_arcsin(s[:, None] * s[None, :] * L23[..., None, None] * P[..., :, None] * Q[..., None, :])
    inner = jnp.einsum("...jklm,l,m->...jk", arcsins, a, a)
    return jnp.einsum("...jk,j,k->...", 4 / (jnp.pi**2 * jnp.sqrt(D)) * inner, a * s, a * s)
