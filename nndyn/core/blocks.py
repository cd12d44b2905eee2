"""Block integrals over the units of a network: gathering covariance blocks from the joint
covariance Ω and contracting the integrals on them with readout vectors.

Words (docs/conventions.md): a *block* is the covariance of the local fields of the units in
an integral's *slots* (r slots, an r×r block); an integral is a function of the block's
*entries* c_pq, p <= q, row-major; a *range* is the set of units an index runs over ("S" the K
student units, "T" the M teacher units, "J" all K + M, students first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

#: The most block evaluations held at once by `folded_contraction` (bounds memory at any width).
CHUNK_ELEMENTS = 1 << 20


def entry_positions(size: int) -> list[tuple[int, int]]:
    """The (p, q), p <= q, of a size×size block's entries, row-major (an integral's argument order)."""
    return [(p, q) for p in range(size) for q in range(p, size)]


def on_blocks(integral, C):
    """`integral` (a function of block entries) on covariance blocks C of shape (..., r, r);
    returns shape (...). Only the upper triangle of C is read."""
    return integral(*(C[..., p, q] for p, q in entry_positions(C.shape[-1])))


def joint_covariance(Q, R, T):
    """Ω = [[Q, R], [Rᵀ, T]] of shape (K+M, K+M) from Q (K, K), R (K, M), T (M, M)."""
    return jnp.block([[Q, R], [R.T, T]])


def units(K: int, M: int) -> dict[str, np.ndarray]:
    """Index arrays of the ranges: "S" the K student units, "T" the M teacher units, "J" all."""
    return {"S": np.arange(K), "T": np.arange(K, K + M), "J": np.arange(K + M)}


@dataclass(frozen=True)
class Split:
    """How `on_units` splits the blocks of a non-smooth integral when it knows their units.

    **Fields:** `coincident`, the integral's coincidence variants alone, ``f(value, *entries)``
    (a generated module's COINCIDENT), which the blocks that repeat a unit take alone;
    `generic`, its generic closed form (GENERIC), which the blocks of distinct units take before
    `coincident` resolves the coincidences they may have in value (a student unit equal to a
    teacher's), or None (a module derived before GENERIC: they take the integral itself); with
    `quadruple` (a generated module's QUADRUPLES, which gives both), the generic form takes
    q = ``quadruple(*entries)`` as its last argument, a function symmetric in the slots (ReLU's
    sign quadruple) evaluated once per set of units (53 sets for 90 blocks of dQ's η² term at
    K = M = 4).
    """

    coincident: Callable
    generic: Callable | None = None
    quadruple: Callable | None = None


def on_units(integral, Omega, slots, split: Split | None = None):
    """`integral` on the blocks of Ω whose slot p holds unit slots[p] (`slots`: r integer index
    arrays of one broadcast shape (...)); returns shape (...).

    With a `split` and NumPy `slots`, the blocks that repeat a unit take the coincidence variants
    only and the others the generic form (with a shared quadruple, see `Split`), so that a
    generic closed form is evaluated only where it can apply (its cost, e.g. ReLU's orthant rule,
    is then spent on distinct units, once per set of them); the coincidence variants are then
    applied once to every block (one copy of them in the program: applied to each set of blocks
    apart, ReLU's 14 for I4 were about half of its compiled field's code).
    """
    r = len(slots)
    pairs = entry_positions(r)
    if split is None or not all(isinstance(slot, np.ndarray) for slot in slots):
        return integral(*[Omega[slots[p], slots[q]] for p, q in pairs])
    grid = [side.reshape(-1) for side in np.broadcast_arrays(*slots)]
    repeated = np.zeros(grid[0].shape, bool)
    for p, q in pairs:
        repeated |= (grid[p] == grid[q]) & (p != q)
    entries = [Omega[grid[p], grid[q]] for p, q in pairs]
    values = jnp.full(grid[0].shape, jnp.nan, Omega.dtype)  # NaN: no generic value where a unit repeats
    distinct = np.flatnonzero(~repeated)
    if len(distinct):
        chosen = [entry[distinct] for entry in entries]
        if split.quadruple is not None:
            generic = _shared_quadruple(split, Omega, np.stack([side[distinct] for side in grid]))
        else:
            generic = integral if split.generic is None else split.generic
        values = values.at[distinct].set(jnp.broadcast_to(generic(*chosen), distinct.shape))
    values = split.coincident(values, *entries)
    return values.reshape(np.broadcast_shapes(*(slot.shape for slot in slots)))


def _shared_quadruple(split: Split, Omega, units):
    """The generic form of the integral on blocks of distinct units (`units` (r, n): each block's
    unit per slot) with `split.quadruple` evaluated once per set of units, on the block of the
    sorted set."""
    generic, quadruple = split.generic, split.quadruple
    assert generic is not None and quadruple is not None
    sets, inverse = np.unique(np.sort(units, axis=0), axis=1, return_inverse=True)
    shared = quadruple(*[Omega[sets[p], sets[q]] for p, q in entry_positions(len(units))])[inverse.reshape(-1)]
    return lambda *entries: generic(*entries, shared)


def block_tensor(integral, Omega, slots, split: Split | None = None):
    """`integral` on the block of Ω picked by every combination of units in `slots`.

    `slots` is a tuple of r integer index arrays (r = the integral's block size); the result has
    shape (len(slots[0]), ..., len(slots[r-1])), entry [j0, j1, ...] being the integral on the
    block Ω[(s0[j0], s1[j1], ...), (s0[j0], s1[j1], ...)]. Vectorised by broadcasting;
    `split` as in `on_units`.
    """
    r = len(slots)
    axes = [slot.reshape((1,) * p + (-1,) + (1,) * (r - p - 1)) for p, slot in enumerate(slots)]
    return jnp.broadcast_to(on_units(integral, Omega, axes, split), tuple(len(slot) for slot in slots))


def folded_contraction(integral, Omega, ranges, weights, free, split: Split | None = None):
    """`integral` in a term symmetric under exchanging each pair of its slots, on pairs x <= y only.

    Slot pair p runs over the units `ranges[p]` and is weighted by w[x] w[y], w = `weights[p]`
    (a vector over those units); summed pairs count x < y twice. When `free`, the first pair is
    the target's and the result is the symmetric matrix over it, else the full sum, a scalar.
    The first pair axis is evaluated in chunks of at most CHUNK_ELEMENTS blocks; `split` as in
    `on_units` (used when there is one chunk).
    """
    pairs = [np.triu_indices(len(units_p)) for units_p in ranges]
    axes = len(pairs)
    inner = int(np.prod([len(lower) for lower, _ in pairs[1:]]))
    count_first = len(pairs[0][0])
    chunk = max(1, min(count_first, CHUNK_ELEMENTS // inner))
    chunks = -(-count_first // chunk)
    # the first pair axis, padded to whole chunks with pairs of weight 0
    lower_first, upper_first = (np.resize(side, chunks * chunk) for side in pairs[0])
    real = np.arange(chunks * chunk) < count_first
    factors = []
    for p, (weight, (lower, upper)) in enumerate(zip(weights, [(lower_first, upper_first), *pairs[1:]])):
        multiplicity = 1.0 if p == 0 and free else np.where(lower == upper, 1.0, 2.0)
        factors.append(weight[lower] * weight[upper] * (multiplicity * real if p == 0 else multiplicity))

    def along(indices, axis):
        return np.reshape(indices, (1,) * axis + (-1,) + (1,) * (axes - axis - 1))

    def one_chunk(first):
        slots = [side.reshape((-1,) + (1,) * (axes - 1)) for side in first]
        for axis, (units_p, sides) in enumerate(zip(ranges[1:], pairs[1:]), start=1):
            slots += [along(units_p[side], axis) for side in sides]
        values = on_units(integral, Omega, slots, split)
        values = jnp.broadcast_to(values, (chunk,) + tuple(len(lower) for lower, _ in pairs[1:]))
        for factor in reversed(factors[1:]):
            values = values @ factor
        return values

    first_units = tuple(ranges[0][side].reshape(chunks, chunk) for side in (lower_first, upper_first))
    if chunks == 1 and split is not None:  # the units known when tracing, to split the blocks
        values = one_chunk(tuple(side[0] for side in first_units))
    else:
        values = jax.lax.map(one_chunk, tuple(map(jnp.asarray, first_units)))
    values = values.reshape(-1) * factors[0]
    if not free:
        return jnp.sum(values)
    matrix = jnp.zeros((len(ranges[0]),) * 2, values.dtype).at[lower_first, upper_first].add(values)
    return matrix.at[upper_first, lower_first].add(values * (lower_first != upper_first))
