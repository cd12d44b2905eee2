"""Evaluating the derived flow-term tables: the order-parameter flows and ε_g of one state.

derive/flows.py expands the SGD update into terms, each a coefficient (in the flow parameters
η, η_v, σ, B, κ, λ, …) times a block integral contracted with readout vectors, or times an order
parameter (a state term: the weight decay); the generator writes them as the table
`nndyn.generated.flows.TERMS`. This module evaluates such a table on the integrals of a model:
unfolded terms as `jnp.einsum` over the integral's block tensor, terms symmetric in pairs of
slots on pairs x <= y only (`folded_contraction`); with teacher and
student activations apart, every term on block tensors split by network. Terms are summed in
table order; terms with a concrete zero coefficient are skipped.

Structured inputs (docs/conventions.md): a *projected* term's slot `projected` holds the field of
a unit projected on one level ℓ of the input spectrum, u^ℓ. Given that level's covariance
ρ_ℓ Ω^ℓ (`level` in `evaluate`), the block tensor is taken on the joint covariance of u and u^ℓ,
[[Ω, ρ_ℓ Ω^ℓ], [ρ_ℓ Ω^ℓ, ρ_ℓ Ω^ℓ]] (2(K+M) fields), the projected slot's units offset by K+M;
without it u^ℓ = u (isotropic inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax.numpy as jnp

from nndyn.core.blocks import block_tensor, folded_contraction, joint_covariance, units


@dataclass(frozen=True)
class Fold:
    """How a term folds onto pairs of slots: `ranges` gives each slot pair's range ("S", "T",
    "J"), `weights` the readout weighting each pair (w[x] w[y]), `free` whether the first pair
    is the target's free pair (a symmetric matrix) rather than summed."""

    ranges: str
    weights: tuple[str, ...]
    free: bool


@dataclass(frozen=True)
class Term:
    """One term of a flow: ``coefficient(*parameters) * einsum(subscripts, integral on the
    blocks of ranges, *weights)``, or with `fold` the same on slot pairs x <= y; with `integral`
    None, a state term ``coefficient(*parameters) * einsum(subscripts, *weights)``.

    **Fields:** `target` ("Q", "R", "v" or "eg"); `parameters`, the names of the flow parameters
    the coefficient takes, in order; `coefficient`, a function of them; `integral` ("I2", "J2",
    "I3", "I4" or None); `ranges`, one range letter per slot; `subscripts`, the einsum of the
    block tensor and the `weights` into the target's axes; `weights`, the names of readouts
    ("a", "e") or order parameters ("Q", "R", "v"); `fold`, or None for an unfolded term.
    """

    target: str
    parameters: tuple[str, ...]
    coefficient: Callable
    integral: str | None
    ranges: str
    subscripts: str
    weights: tuple[str, ...]
    fold: Fold | None = None
    projected: int | None = None


def readouts(v, v_star, feedback=None, kappa=1.0, kappa_star=1.0) -> dict:
    """The readout vectors terms are weighted by (docs/conventions.md): the signed scaled
    readout a = (−κ v, κ* v*) (K+M,), so that the error is Δ = Σ_c a_c g_c(u_c) + σ ξ, and the
    feedback vector e (K,) that carries the error to the first layer: κ v (backpropagation, when
    `feedback` is None) or κ b (feedback alignment, `feedback` = b)."""
    return {"a": jnp.concatenate([-kappa * v, kappa_star * v_star]),
            "e": kappa * (v if feedback is None else feedback)}


def is_zero(value) -> bool:
    """Whether `value` is a concrete zero (a term that cannot contribute, e.g. no weight decay)."""
    return isinstance(value, (int, float)) and value == 0


def _slots(term, chosen, ranges, offset):
    """The units of each slot of `term` with slot p in range chosen[p], its projected slot's
    offset by `offset` (0 without a level)."""
    return tuple(ranges[letter] + (offset if p == term.projected else 0) for p, letter in enumerate(chosen))


def _mixed_tensor(integral, split, factors, Omega, ranges, term, offset=0):
    """The block tensor of `term` with teacher and student activations apart: each slot of range
    J is split into its student and teacher parts, each part evaluated with the integral of its
    signature (a letter per slot: "s" student, "t" teacher, "-" the u slot), and the parts
    concatenated back; `offset` as in `_slots`."""
    def part(p, chosen):
        if p == len(term.ranges):
            signature = "".join("-" if factor == "u" else letter.lower()
                                for factor, letter in zip(factors[term.integral], chosen))
            return block_tensor(integral(term.integral, signature), Omega, _slots(term, chosen, ranges, offset),
                                None if split is None else split(term.integral, signature))
        letters = ("S", "T") if term.ranges[p] == "J" else (term.ranges[p],)
        pieces = [part(p + 1, chosen + letter) for letter in letters]
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=p)

    return part(0, "")


def evaluate(terms: tuple[Term, ...], integral: Callable, targets: tuple[str, ...], Q, R, T, weights: Mapping,
             parameters: Mapping, factors: Mapping | None = None, split: Callable | None = None,
             level=None) -> tuple:
    """The sums of the `terms` of each of `targets` on one state, in the order of `targets`.

    **Arguments:** `integral(name, signature)`, the function of block entries of integral `name`
    with each slot's activation given by `signature` (see `_mixed_tensor`; None when one
    activation serves every unit); Q (K, K), R (K, M), T (M, M); `weights`, the readouts
    (`readouts`) and the order parameters Q, R, v by name; `parameters`, the flow
    parameters by name (scalars, or arrays under vmap); `factors`, each integral's factor per
    slot ("g", "g_prime", "u"), given when teacher and student activations differ (every
    term is then evaluated unfolded, on split tensors); `split(name, signature)`, like
    `integral` the `nndyn.core.blocks.Split` of the integral (its coincidence variants alone, for
    the blocks that repeat a unit, and a quadruple shared by a set of units), or None;
    `level`, for the flows of one level ℓ of a structured input, ρ_ℓ Ω^ℓ (K+M, K+M), the
    covariance of the projected fields (module docstring; Q, R, T are then the blocks of the
    fields' own covariance Σ_ℓ ρ_ℓ Ω^ℓ and the weights "Q", "R" the level's overlaps), or None.

    **Returns:** per target, an array of the target's shape: Q (K, K), R (K, M), v (K,), eg ().
    """
    Omega, ranges = joint_covariance(Q, R, T), units(*R.shape)
    offset = 0
    if level is not None:
        Omega, offset = jnp.block([[Omega, level], [level, level]]), Omega.shape[0]

    def variants(name):
        return None if split is None else split(name, None)

    tensors = {}
    for term in terms:
        key = (term.integral, term.ranges, term.projected)
        if term.target in targets and term.integral is not None and key not in tensors and (
                term.fold is None or factors is not None):
            if factors is None:
                slots = _slots(term, term.ranges, ranges, offset)
                tensors[key] = block_tensor(integral(term.integral, None), Omega, slots, variants(term.integral))
            else:
                tensors[key] = _mixed_tensor(integral, split, factors, Omega, ranges, term, offset)
    sums = []
    for target in targets:
        total = None
        for term in terms:
            if term.target != target:
                continue
            coefficient = term.coefficient(*(parameters[name] for name in term.parameters))
            if is_zero(coefficient):
                continue
            if term.integral is None:
                value = jnp.einsum(term.subscripts, *(weights[name] for name in term.weights))
            elif term.fold is None or factors is not None:
                value = jnp.einsum(term.subscripts, tensors[term.integral, term.ranges, term.projected],
                                   *(weights[name] for name in term.weights))
            else:
                value = folded_contraction(integral(term.integral, None), Omega,
                                           tuple(ranges[letter] for letter in term.fold.ranges),
                                           tuple(weights[name] for name in term.fold.weights), free=term.fold.free,
                                           split=variants(term.integral))
            value = coefficient * value
            total = value if total is None else total + value
        K, M = R.shape
        sums.append(jnp.zeros({"Q": (K, K), "R": (K, M), "v": (K,), "eg": ()}[target]) if total is None else total)
    return tuple(sums)
