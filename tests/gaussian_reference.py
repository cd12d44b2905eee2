"""Reference values of the block integrals computed without the generated code: the erf
activation written with SciPy, Monte Carlo estimates with standard errors, and tensor-product
Gauss–Hermite quadrature. Used by several test modules."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import erf

SQRT2 = np.sqrt(2.0)


def g(x):
    """erf(x/√2)."""
    return erf(x / SQRT2)


def g_prime(x):
    """√(2/π) exp(-x²/2)."""
    return np.sqrt(2.0 / np.pi) * np.exp(-(x**2) / 2)


def integrands(g, g_prime):
    """name -> integrand on u of shape (..., r), for the activation g with derivative g_prime."""
    return {
        "I2": lambda u: g(u[..., 0]) * g(u[..., 1]),
        "J2": lambda u: g_prime(u[..., 0]) * g_prime(u[..., 1]),
        "I3": lambda u: g_prime(u[..., 0]) * u[..., 1] * g(u[..., 2]),
        "I4": lambda u: g_prime(u[..., 0]) * g_prime(u[..., 1]) * g(u[..., 2]) * g(u[..., 3]),
    }


#: activation -> name -> integrand, written independently of the generated modules
INTEGRANDS_OF = {
    "erf": integrands(g, g_prime),
    "linear": integrands(lambda x: x, np.ones_like),
    "quadratic": integrands(lambda x: x**2, lambda x: 2 * x),
    "relu": integrands(lambda x: np.maximum(x, 0.0), lambda x: np.heaviside(x, 0.5)),
}
INTEGRANDS = INTEGRANDS_OF["erf"]


@st.composite
def covariance_blocks(draw, size, largest=4.0):
    """Valid covariance blocks: random PSD with diagonal in [0.05, `largest`], including
    near-singular ones (low rank plus a tiny ridge) and ones with repeated rows (repeated indices)."""
    kind = draw(st.sampled_from(["full", "near-singular", "repeated"]))
    rank = size if kind == "full" else draw(st.integers(1, size - 1))
    factor = draw(arrays(np.float64, (size, rank), elements=st.floats(-1, 1, width=32)))
    C = factor @ factor.T + (1e-9 if kind == "near-singular" else 0.05) * np.eye(size)
    if kind == "repeated":
        source, target = draw(st.permutations(range(size)))[:2]
        C[target, :] = C[source, :]
        C[:, target] = C[:, source]
    scale = draw(st.floats(0.05, largest)) / np.max(np.diag(C))
    C = C * scale
    if np.min(np.diag(C)) < 0.05:
        C = C + (0.05 - np.min(np.diag(C))) * np.eye(size)
    return C


def psd_root(C: np.ndarray) -> np.ndarray:
    """L with L Lᵀ = C for a positive semi-definite (possibly singular) C."""
    values, vectors = np.linalg.eigh(C)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def seed_of(array: np.ndarray) -> int:
    """A reproducible seed derived from the array's bytes."""
    return int.from_bytes(hashlib.sha256(np.ascontiguousarray(array).tobytes()).digest()[:8], "little")


def monte_carlo(integrand, C: np.ndarray, samples: int, seed: int, chunk: int = 250_000):
    """(mean, standard error) of integrand(u), u ~ N(0, C), from `samples` draws."""
    rng = np.random.default_rng(seed)
    root = psd_root(C)
    total = total_sq = 0.0
    for start in range(0, samples, chunk):
        z = rng.standard_normal((min(chunk, samples - start), C.shape[0]))
        values = integrand(z @ root.T)
        total += values.sum()
        total_sq += (values**2).sum()
    mean = total / samples
    variance = (total_sq - samples * mean**2) / (samples - 1)
    return mean, np.sqrt(max(variance, 0.0) / samples)


def gauss_hermite(integrand, C: np.ndarray, order: int = 48) -> float:
    """⟨integrand⟩ by a tensor-product Gauss–Hermite rule of `order` points per dimension."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    weights = weights / weights.sum()
    r = C.shape[0]
    grids = np.meshgrid(*([nodes] * r), indexing="ij")
    z = np.stack([grid.ravel() for grid in grids], axis=-1)
    w = np.prod(np.meshgrid(*([weights] * r), indexing="ij"), axis=0).ravel()
    return float(np.sum(w * integrand(z @ psd_root(C).T)))
