"""The numerical fallback's quadrature in JAX, for integrals with no closed form
(derive/quadrature.py lowers them and chooses each rule): the trapezoidal rule on a block's
eigen-root (`trapezoid`), and across the kinks of one or two variables the piecewise rule
(`piecewise`: polar Gauss rules on the arcs between the kinks, the trapezoidal rule on the rest)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core.blocks import entry_positions

#: Quadrature nodes evaluated at once (bounds the memory per block).
CHUNK = 4096


def _matrix(entries):
    """The blocks (..., r, r) of `entries` (the c_pq, p <= q, row-major)."""
    r = int(round((np.sqrt(8 * len(entries) + 1) - 1) / 2))
    entries = jnp.broadcast_arrays(*entries)
    C = jnp.zeros(entries[0].shape + (r, r), entries[0].dtype)
    for (p, q), entry in zip(entry_positions(r), entries):
        C = C.at[..., p, q].set(entry).at[..., q, p].set(entry)
    return C


def _root(C):
    """L with L Lᵀ = C (..., r, r), from the symmetric eigendecomposition (singular blocks are fine)."""
    values, vectors = jnp.linalg.eigh(C)
    return vectors * jnp.sqrt(jnp.clip(values, 0.0, None))[..., None, :]


def _grid(step, radius, dimension):
    """The trapezoidal rule's nodes z (P, dimension) with |z| <= `radius` and weights (P,) ∝ the
    standard normal density, summing to 1."""
    axis = step * np.arange(-np.floor(radius / step), np.floor(radius / step) + 1)
    z = np.stack(np.meshgrid(*([axis] * dimension), indexing="ij"), axis=-1).reshape(-1, dimension)
    z = z[np.sum(z**2, axis=1) <= radius**2]
    w = np.exp(-0.5 * np.sum(z**2, axis=1))
    return z, w / w.sum()


def trapezoid(integrand, entries, step, radius):
    """<integrand(u_0, ..., u_{r-1})> for u ~ N(0, C), C the r×r blocks given by `entries` (the
    c_pq, p <= q, row-major, arrays of one broadcast shape (...)), by the trapezoidal rule of
    step `step` on u = L z, L Lᵀ = C (symmetric eigendecomposition, so singular blocks are fine),
    over the grid points with |z| <= `radius`. Returns shape (...).
    """
    root = _root(_matrix(entries))
    r = root.shape[-1]
    z, w = _grid(step, radius, r)
    chunks = -(-len(w) // CHUNK)
    z = np.resize(z, (chunks * CHUNK, r)).reshape(chunks, CHUNK, r)
    w = np.where(np.arange(chunks * CHUNK) < len(w), np.resize(w, chunks * CHUNK), 0.0)

    def add_chunk(total, chunk):
        nodes, weights = chunk
        u = jnp.einsum("...ij,pj->...pi", root, nodes)
        values = integrand(*(u[..., i] for i in range(r)))
        return total + jnp.sum(weights * values, axis=-1), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros(root.shape[:-2], root.dtype),
                            (jnp.asarray(z), jnp.asarray(w.reshape(chunks, CHUNK))))
    return total


def _arc(signs, phi):
    """(start, length) of the arc of θ on which the plane's kinked variables have `signs`
    (v1 = a cos θ; with two kinks v2 ∝ cos(θ − φ), φ ∈ [0, π]); derive/quadrature.py's `arc`."""
    if len(signs) == 1:
        return (-np.pi / 2 if signs[0] > 0 else np.pi / 2) + 0 * phi, np.pi + 0 * phi
    return {(1, 1): (phi - np.pi / 2, np.pi - phi), (1, -1): (-np.pi / 2 + 0 * phi, phi),
            (-1, 1): (np.pi / 2 + 0 * phi, phi), (-1, -1): (phi + np.pi / 2, np.pi - phi)}[tuple(signs)]


def piecewise(integrand, entries, kinks, signs, radial, step, radius):
    """<integrand(u_0, ..., u_{r-1})> for u ~ N(0, C) (`entries` as in `trapezoid`) when the
    integrand is non-smooth where the variables `kinks` (one or two slots) vanish: the *plane*
    variables (the kinked ones, completed by a smooth one or a dummy) are v1 = a z1,
    v2 = b z1 + c z2 on the block's root rotated to lower-triangular (a, c >= 0, so collinear
    and coincident units are fine; c = 0 where the plane's determinant is round-off),
    z = ρ (cos θ, sin θ); on each arc of θ between the kinks with
    the sign patterns `signs` (the others hold a zero integrand) a Gauss–Legendre rule in θ and
    the Gauss rule `radial` = (nodes, weights) of the weight ρ exp(−ρ²/2) in ρ, as many points
    each; the other variables, given the plane, by the trapezoidal rule of `step` and `radius`.
    Returns shape (...). derive/quadrature.py's `evaluate` is the same rule in NumPy.
    """
    C = _matrix(entries)
    size = C.shape[-1]
    order = [*kinks, *(i for i in range(size) if i not in kinks)]  # the plane first
    C = C[..., order, :][..., :, order]
    if size == 1:  # a dummy second plane variable, independent
        C = jnp.concatenate([jnp.concatenate([C, jnp.zeros_like(C)], -1),
                             jnp.concatenate([jnp.zeros_like(C), jnp.ones_like(C)], -1)], -2)
    root = _root(C)
    rotation, triangle = jnp.linalg.qr(jnp.swapaxes(root[..., :2, :], -1, -2), mode="complete")
    flip = jnp.where(jnp.diagonal(triangle, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    rotation = rotation.at[..., :, :2].multiply(flip[..., None, :])
    root = root @ rotation  # rows 0, 1: (a, 0), (b, c)
    collinear = C[..., 0, 0] * C[..., 1, 1] - C[..., 0, 1] ** 2 <= 4 * np.finfo(float).eps * C[..., 0, 0] * C[..., 1, 1]
    root = root.at[..., 1, 1].set(jnp.where(collinear, 0.0, root[..., 1, 1]))  # as derive/quadrature.py's _collinear
    phi = jnp.arctan2(root[..., 1, 1], root[..., 1, 0])
    x, w = np.polynomial.legendre.leggauss(len(radial[0]))
    angles, angle_weights = [], []
    for pattern in signs:
        start, length = _arc(pattern, phi)
        angles.append(start[..., None] + length[..., None] * (x + 1) / 2)
        angle_weights.append(length[..., None] * w / 2 / (2 * np.pi))
    angle, angle_weight = jnp.concatenate(angles, -1), jnp.concatenate(angle_weights, -1)  # (..., A)
    direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1) @ jnp.swapaxes(root[..., :, :2], -1, -2)
    z, rest_weight = _grid(step, radius, root.shape[-1] - 2) if root.shape[-1] > 2 else (np.zeros((1, 0)), np.ones(1))
    rest = jnp.einsum("...ij,pj->...pi", root[..., :, 2:], z)  # (..., P, variables)
    back = [order.index(i) for i in range(size)]

    def add_radius(total, node):
        radius_node, radius_weight = node
        u = radius_node * direction[..., :, None, :] + rest[..., None, :, :]  # (..., A, P, variables)
        values = integrand(*(u[..., k] for k in back))
        return total + radius_weight * jnp.einsum("...a,p,...ap->...", angle_weight, rest_weight, values), None

    total, _ = jax.lax.scan(add_radius, jnp.zeros(root.shape[:-2], root.dtype),
                            (jnp.asarray(radial[0]), jnp.asarray(radial[1])))
    return total
