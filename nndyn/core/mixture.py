"""The mixture fallbacks' evaluation (derive/mixture.py fits them).

An erf mixture ĝ(x) = c0 + Σ_j a_j G(s_j x), G(x) = erf(x/√2) the built-in erf activation: its
integrals are weighted sums of G's generated closed forms on rescaled blocks (docs/derivation.md),
or of an exact activation's closed forms with G (a pair module's) where the other slots hold an
exact activation (ReLU with a tanh teacher). I4, n⁴ terms per block, is evaluated in a factorised
form of G's closed form (:func:`_factorised_I4`).

A smoothed-ReLU mixture ĝ(x) = Σ_j a_j Ψ(s_j x), Ψ(y) = E_z ReLU(y + z) = y Φ(y) + φ(y) with z a
standard normal (softplus and its kin, which rise like a ReLU but are smooth): since
Ψ(s u) = E_z ReLU(s u + z) and Ψ'(s u) = Φ(s u) = E_z H(s u + z), every integral of ĝ is a
weighted sum of ReLU's closed forms (or a pair module's of ReLU with an exact activation) on the
blocks S C S + E, S the slots' scales and E the identity on the mixture's slots
(:func:`relu_mixtures`).
"""

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
    `entries`; returns shape (...): `erf_mixtures` with this mixture in every slot."""
    return erf_mixtures(name, ((offset, terms),) * len(FACTORS[name]), *entries)


def erf_mixtures(name: str, slots: tuple, *entries, base=None):
    """Integral `name` ("I2", "J2", "I3", "I4") with slot p's activation the erf mixture
    ĝ_p = c_p + Σ_j a_j G(s_j x) given by slots[p] = (c_p, ((a_j, s_j), …)) (None for the u slot
    of I3), on the blocks whose entries c_pq (p ≤ q, row-major, broadcast arrays (...)) are
    `entries`; returns shape (...). Slot p of term j is G's slot on y_p = s_j u_p, weighted a_j
    (g) or a_j s_j (g'); the u slot is unscaled. The terms odd in an offset vanish (ĝ_p − c_p is
    odd): I2 gains c_0 c_1, I4 gains c_2 c_3 J2 on its first two slots (a student's ĝ with a
    teacher's, e.g. tanh's mixture with erf's exact one term, in a pair module).

    With `base`, a function of the entries like these, the terms are `base`'s instead of G's:
    the closed form of an exact activation (e.g. ReLU) in the slots that are None, with G in the
    others (a pair module of that activation and erf, e.g. relu__erf's), so that a ReLU student
    meets a tanh teacher through tanh's mixture. The mixtures' offsets must then be 0 (an odd
    activation): an offset would need `base`'s integrals with one slot fewer."""
    factors = FACTORS[name]
    if base is not None and any(slot is not None and slot[0] for slot, factor in zip(slots, factors) if factor == "g"):
        raise ValueError(f"{name}: an erf mixture with an offset has no terms in an exact activation's closed forms")
    columns = [None if factor == "u" or slots[p] is None else tuple(jnp.asarray(column) for column in zip(*slots[p][1]))
               for p, factor in enumerate(factors)]
    if name == "I4" and base is None:
        value = _factorised_I4(*columns, *entries)
        if slots[2][0] and slots[3][0]:
            value = value + slots[2][0] * slots[3][0] * erf_mixtures("J2", slots[:2], entries[0], entries[1],
                                                                     entries[4])
        return value
    closed_form = erf.INTEGRALS[name] if base is None else base
    value = _sum_over_terms(factors, columns, entries, closed_form, smoothed=False)
    if name == "I2" and base is None:
        value = value + slots[0][0] * slots[1][0]
    return value


def relu_mixture(name: str, terms: tuple[tuple[float, float], ...], *entries, base):
    """Integral `name` ("I2", "J2", "I3", "I4") of ĝ = Σ_j a_j Ψ(s_j x), (a_j, s_j) in `terms`,
    on the blocks whose entries c_pq (p ≤ q, row-major, broadcast arrays (...)) are `entries`;
    returns shape (...): `relu_mixtures` with this mixture in every slot, `base` ReLU's closed form."""
    slots = tuple(None if factor == "u" else (0.0, terms) for factor in FACTORS[name])
    return relu_mixtures(name, slots, *entries, base=base)


def relu_mixtures(name: str, slots: tuple, *entries, base):
    """Integral `name` ("I2", "J2", "I3", "I4") with slot p's activation the smoothed-ReLU mixture
    ĝ_p = Σ_j a_j Ψ(s_j x) given by slots[p] = (0.0, ((a_j, s_j), …)) (None for the u slot of I3
    and for an exact activation's slots), on the blocks whose entries c_pq (p ≤ q, row-major,
    broadcast arrays (...)) are `entries`; returns shape (...). `base` is ReLU's closed form of
    the integral (`nndyn.generated.relu`), or a pair module's of ReLU with the exact activation
    of the None slots (e.g. relu__erf's for a softplus student on an erf teacher): slot p of term
    j is ReLU's (H's for g') on y_p = s_j u_p + z_p, z_p independent standard normals, weighted
    a_j (g) or a_j s_j (g'), so its variance is s_j² c_pp + 1 and its covariances s_j s_k c_pq."""
    factors = FACTORS[name]
    if any(slot is not None and slot[0] for slot in slots):
        raise ValueError(f"{name}: a smoothed-ReLU mixture has no offset")
    columns = [None if factor == "u" or slots[p] is None else tuple(jnp.asarray(column) for column in zip(*slots[p][1]))
               for p, factor in enumerate(factors)]
    return _sum_over_terms(factors, columns, entries, base, smoothed=True)


def _sum_over_terms(factors, columns, entries, closed_form, smoothed: bool):
    """Σ over the terms (j, k, …) of the slots' mixtures (`columns`: per slot (a_j, s_j) arrays, or
    None for a slot kept as it is) of the weights times `closed_form` on the rescaled block
    (plus the identity on the mixture's slots where `smoothed`), summed; shape (...)."""
    r = len(factors)
    scales, weights = [], []
    for p, (factor, column) in enumerate(zip(factors, columns)):
        shape = [1] * r
        shape[p] = -1
        if column is None:  # the u slot, or the exact activation's
            scale, weight = jnp.ones(1), jnp.ones(1)
        else:
            a, s = column
            scale, weight = s, a * s if factor == "g_prime" else a
        scales.append(scale.reshape(shape))
        weights.append(weight.reshape(shape))
    grid = [jnp.asarray(entry)[(..., *(None,) * r)] for entry in entries]
    scaled = [entry * scales[p] * scales[q] + (1.0 if smoothed and p == q and columns[p] is not None else 0.0)
              for entry, (p, q) in zip(grid, entry_positions(r))]
    return jnp.sum(functools.reduce(jnp.multiply, weights) * closed_form(*scaled), axis=tuple(range(-r, 0)))


def _factorised_I4(first, second, third, fourth, c00, c01, c02, c03, c11, c12, c13, c22, c23, c33):
    """Σ_jklm a_j s_j a_k s_k a_l a_m I4_G(S C S), S = diag(s_j, s_k, s_l, s_m), shape (...), with
    (a_j, s_j) of slot 0's mixture (`first`, a pair of arrays), k of slot 1's, l of slot 2's, m
    of slot 3's.

    G's closed form is I4_G(C) = 4/(π² √D) arcsin(Λ_23 / √((D + Λ_22)(D + Λ_33))) with
    D = det(1 + C_01) and Λ_lm = D (c_lm − c_l,01 (1 + C_01)⁻¹ c_01,m) for l, m ∈ {2, 3}, C_01
    the block's first two slots: the generated erf.I4's numerator and radicands, regrouped. On the
    rescaled block D and Λ_lm/(s_l s_m) depend on (j, k) only, so per (j, k) three numbers are
    computed once and each of the n⁴ terms costs one arcsin and three products
    (tests/test_mixture.py ties this to G's closed form on each rescaled block)."""
    def jk(entry):  # (...) -> (..., 1, 1) against the (j, k) axes
        return jnp.asarray(entry)[..., None, None]

    (a_0, s_0), (a_1, s_1), (a_2, s_2), (a_3, s_3) = first, second, third, fourth
    s_j, s_k = s_0[:, None], s_1[None, :]
    d00, d01, d11 = jk(c00) * s_j**2, jk(c01) * s_j * s_k, jk(c11) * s_k**2
    e02, e03, e12, e13 = jk(c02) * s_j, jk(c03) * s_j, jk(c12) * s_k, jk(c13) * s_k
    D = (1 + d00) * (1 + d11) - d01**2

    def schur(c_lm, e0l, e1l, e0m, e1m):  # D (c_lm − c_l,01 (1 + C_01)⁻¹ c_01,m), shape (..., j, k)
        return jk(c_lm) * D - (e0l * (1 + d11) * e0m - d01 * (e0l * e1m + e1l * e0m) + e1l * (1 + d00) * e1m)

    L23, L22, L33 = schur(c23, e02, e12, e03, e13), schur(c22, e02, e12, e02, e12), schur(c33, e03, e13, e03, e13)
    P = jax.lax.rsqrt(D[..., None] + s_2**2 * L22[..., None])  # (..., j, k, l)
    Q = jax.lax.rsqrt(D[..., None] + s_3**2 * L33[..., None])  # (..., j, k, m)
    arcsins = safe_arcsin(s_2[:, None] * s_3[None, :] * L23[..., None, None] * P[..., :, None] * Q[..., None, :])
    inner = jnp.einsum("...jklm,l,m->...jk", arcsins, a_2, a_3)
    return jnp.einsum("...jk,j,k->...", 4 / (jnp.pi**2 * jnp.sqrt(D)) * inner, a_0 * s_0, a_1 * s_1)
