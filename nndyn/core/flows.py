"""Evaluating the derived flow-term tables: the order-parameter flows and ε_g of one state.

derive/flows.py expands the SGD update into terms, each a coefficient (in the flow parameters
η, η_v, σ, B, …) times a block integral contracted with readout vectors; the generator writes
them as the table `nndyn.generated.flows.TERMS`. This module evaluates such a table on the
integrals of an activation: unfolded terms as `jnp.einsum` over the integral's block tensor,
terms symmetric in pairs of slots on pairs x <= y only (:func:`~nndyn.core.blocks.folded_contraction`).
Terms are summed in table order.
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
    blocks of ranges, *weights)``, or with `fold` the same on slot pairs x <= y.

    **Fields:** `target` ("Q", "R", "v" or "eg"); `parameters`, the names of the flow parameters
    the coefficient takes, in order; `coefficient`, a function of them; `integral` ("I2", "J2", "I3", "I4"); `ranges`, one range letter per slot;
    `subscripts`, the einsum of the block tensor and the `weights` (readout names, "v" or "a")
    into the target's axes; `fold`, or None for an unfolded term.
    """

    target: str
    parameters: tuple[str, ...]
    coefficient: Callable
    integral: str
    ranges: str
    subscripts: str
    weights: tuple[str, ...]
    fold: Fold | None = None


def readouts(v, v_star) -> dict:
    """The readout vectors terms are weighted by: the student's v (K,) and the signed readout
    a = (−v, v*) (K+M,), so that the error is Δ = Σ_c a_c g(u_c) + σ ξ (docs/conventions.md)."""
    return {"v": v, "a": jnp.concatenate([-v, v_star])}


def evaluate(terms: tuple[Term, ...], integrals: Mapping[str, Callable], targets: tuple[str, ...],
             Q, R, v, T, v_star, parameters: Mapping) -> tuple:
    """The sums of the `terms` of each of `targets` on one state, in the order of `targets`.

    **Arguments:** `integrals`, each integral's function of block entries (a kernel module's
    INTEGRALS); Q (K, K), R (K, M), v (K,), T (M, M), v_star (M,); `parameters`, the flow
    parameters by name (scalars, or arrays under vmap).

    **Returns:** per target, an array of the target's shape: Q (K, K), R (K, M), v (K,), eg ().
    """
    Omega, ranges = joint_covariance(Q, R, T), units(*R.shape)
    weights = readouts(v, v_star)
    tensors = {}
    for term in terms:
        key = (term.integral, term.ranges)
        if term.target in targets and term.fold is None and key not in tensors:
            slots = tuple(ranges[letter] for letter in term.ranges)
            tensors[key] = block_tensor(integrals[term.integral], Omega, slots)
    sums = []
    for target in targets:
        total = None
        for term in terms:
            if term.target != target:
                continue
            if term.fold is None:
                value = jnp.einsum(term.subscripts, tensors[term.integral, term.ranges],
                                   *(weights[name] for name in term.weights))
            else:
                value = folded_contraction(integrals[term.integral], Omega,
                                           tuple(ranges[letter] for letter in term.fold.ranges),
                                           tuple(weights[name] for name in term.fold.weights), free=term.fold.free)
            value = term.coefficient(*(parameters[name] for name in term.parameters)) * value
            total = value if total is None else total + value
        sums.append(total)
    return tuple(sums)
