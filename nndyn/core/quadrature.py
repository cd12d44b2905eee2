"""The numerical fallback's quadrature in JAX: the trapezoidal rule on a block's eigen-root, for
integrals with no closed form (derive/quadrature.py lowers them and chooses each step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core.blocks import entry_positions

#: Quadrature nodes evaluated at once (bounds the memory per block).
CHUNK = 4096


def trapezoid(integrand, entries, step, radius):
    """<integrand(u_0, ..., u_{r-1})> for u ~ N(0, C), C the r×r blocks given by `entries` (the
    c_pq, p <= q, row-major, arrays of one broadcast shape (...)), by the trapezoidal rule of
    step `step` on u = L z, L Lᵀ = C (symmetric eigendecomposition, so singular blocks are fine),
    over the grid points with |z| <= `radius`. Returns shape (...).
    """
    r = int(round((np.sqrt(8 * len(entries) + 1) - 1) / 2))
    entries = jnp.broadcast_arrays(*entries)
    C = jnp.zeros(entries[0].shape + (r, r), entries[0].dtype)
    for (p, q), entry in zip(entry_positions(r), entries):
        C = C.at[..., p, q].set(entry).at[..., q, p].set(entry)
    values, vectors = jnp.linalg.eigh(C)
    root = vectors * jnp.sqrt(jnp.clip(values, 0.0, None))[..., None, :]
    axis = step * np.arange(-np.floor(radius / step), np.floor(radius / step) + 1)
    z = np.stack(np.meshgrid(*([axis] * r), indexing="ij"), axis=-1).reshape(-1, r)
    z = z[np.sum(z**2, axis=1) <= radius**2]
    w = np.exp(-0.5 * np.sum(z**2, axis=1))
    w = w / w.sum()
    chunks = -(-len(w) // CHUNK)
    z = np.resize(z, (chunks * CHUNK, r)).reshape(chunks, CHUNK, r)
    w = np.where(np.arange(chunks * CHUNK) < len(w), np.resize(w, chunks * CHUNK), 0.0)

    def add_chunk(total, chunk):
        nodes, weights = chunk
        u = jnp.einsum("...ij,pj->...pi", root, nodes)
        values = integrand(*(u[..., i] for i in range(r)))
        return total + jnp.sum(weights * values, axis=-1), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros(entries[0].shape, root.dtype),
                            (jnp.asarray(z), jnp.asarray(w.reshape(chunks, CHUNK))))
    return total
