"""Input spectra: the levels of a structured input covariance Σ (docs/conventions.md,
"Structured inputs").

A spectrum is a tuple of levels (ρ_ℓ, f_ℓ): eigenvalue ρ_ℓ > 0 on a fraction f_ℓ of the N
coordinates (Σ f_ℓ = 1). In the eigenbasis the coordinates are grouped by level, in the order
given: at finite N level ℓ holds the coordinates from round(N F_{ℓ−1}) to round(N F_ℓ) − 1,
F_ℓ = f_1 + … + f_ℓ (`level_sizes`). The ODE describes N → ∞ at a fixed spectrum, where every
level holds f_ℓ N → ∞ coordinates.
"""

from __future__ import annotations

import math

import numpy as np

#: How far Σ f_ℓ may be from 1 (the fractions are typed or computed in floating point).
FRACTION_TOLERANCE = 1e-9

#: A spectrum: ((ρ_1, f_1), …, (ρ_L, f_L)).
Spectrum = tuple[tuple[float, float], ...]


def check(value) -> Spectrum:
    """`value`, a sequence of (eigenvalue, fraction) pairs, as a `Spectrum` of floats; raises
    ValueError with one line, "must be …, got …", naming the first problem (not a sequence of pairs,
    an eigenvalue not finite and > 0, a fraction not in (0, 1], fractions not summing to 1)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        raise ValueError(f"must be a non-empty list of [eigenvalue, fraction] pairs, got {value!r}")
    levels = []
    for number, level in enumerate(value, start=1):
        if isinstance(level, (str, bytes)) or not hasattr(level, "__len__") or len(level) != 2:
            raise ValueError(f"must be a list of [eigenvalue, fraction] pairs, got {level!r} at level {number}")
        for entry in level:
            if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, (int, float, np.integer, np.floating)):
                raise ValueError(f"must be pairs of numbers, got {entry!r} at level {number}")
        eigenvalue, fraction = float(level[0]), float(level[1])
        if not (math.isfinite(eigenvalue) and eigenvalue > 0):
            raise ValueError(f"must be levels of finite eigenvalue > 0, got {eigenvalue!r} at level {number}")
        if not (math.isfinite(fraction) and 0 < fraction <= 1):
            raise ValueError(f"must be levels of fraction in (0, 1], got {fraction!r} at level {number}")
        levels.append((eigenvalue, fraction))
    total = math.fsum(fraction for _, fraction in levels)
    if abs(total - 1) > FRACTION_TOLERANCE:
        raise ValueError(f"must be levels whose fractions sum to 1, got {total!r}")
    return tuple(levels)


def power_law(exponent: float, levels: int, normalise: bool = True) -> Spectrum:
    """L = `levels` levels of equal fraction 1/L with eigenvalues ρ_ℓ ∝ ℓ^−(1+a), a = `exponent`
    (Worschech & Rosenow 2024: L distinct eigenvalues, each N/L times), normalised so that
    tr Σ/N = Σ_ℓ f_ℓ ρ_ℓ = 1 unless `normalise` is False (then ρ_1 = 1)."""
    if not (isinstance(levels, (int, np.integer)) and not isinstance(levels, bool) and levels >= 1):
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    if not math.isfinite(exponent) or exponent <= -1:
        raise ValueError(f"power_law must be a finite number > -1, got {exponent!r}")
    rho = np.arange(1, levels + 1, dtype=np.float64) ** -(1.0 + exponent)
    if normalise:
        rho = rho / np.mean(rho)
    return tuple((float(value), 1.0 / levels) for value in rho)


def eigenvalues(spectrum: Spectrum) -> np.ndarray:
    """ρ (L,)."""
    return np.array([rho for rho, _ in spectrum])


def fractions(spectrum: Spectrum) -> np.ndarray:
    """f (L,)."""
    return np.array([fraction for _, fraction in spectrum])


def level_sizes(spectrum: Spectrum, N: int) -> np.ndarray:
    """The number of coordinates of each level at input dimension N (L,), summing to N (module
    docstring); ValueError when a level gets none."""
    bounds = np.round(N * np.cumsum(fractions(spectrum))).astype(int)
    bounds[-1] = N
    sizes = np.diff(np.concatenate([[0], bounds]))
    if np.any(sizes < 1):
        empty = int(np.argmax(sizes < 1)) + 1
        raise ValueError(f"level {empty} of input_spectrum holds no coordinate at N = {N} (fraction "
                         f"{spectrum[empty - 1][1]:g}); raise N or merge levels")
    return sizes


def level_of_coordinates(spectrum: Spectrum, N: int) -> np.ndarray:
    """The level (0-based) of each of the N coordinates (N,)."""
    return np.repeat(np.arange(len(spectrum)), level_sizes(spectrum, N))


def coordinate_scales(spectrum: Spectrum, N: int) -> np.ndarray:
    """The standard deviation √ρ of each of the N coordinates (N,): x = scales · z, z ~ N(0, I)."""
    return np.sqrt(eigenvalues(spectrum))[level_of_coordinates(spectrum, N)]


def indicators(spectrum: Spectrum, N: int) -> np.ndarray:
    """The levels' indicator vectors (L, N): row ℓ is 1 on level ℓ's coordinates (P_ℓ's diagonal)."""
    return (level_of_coordinates(spectrum, N)[None, :] == np.arange(len(spectrum))[:, None]).astype(np.float64)


def check_teacher(value) -> tuple[float, ...]:
    """`value`, the teacher's variance per level (a sequence of numbers ≥ 0, not all 0), as a
    tuple of floats; raises ValueError with one line "must be …, got …"."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        raise ValueError(f"must be a non-empty list of variances, one per level, got {value!r}")
    weights = []
    for number, entry in enumerate(value, start=1):
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, (int, float, np.integer, np.floating)):
            raise ValueError(f"must be a list of numbers, got {entry!r} at level {number}")
        if not (math.isfinite(float(entry)) and float(entry) >= 0):
            raise ValueError(f"must be finite variances >= 0, got {float(entry)!r} at level {number}")
        weights.append(float(entry))
    if not any(weights):
        raise ValueError(f"must be variances not all 0, got {value!r}")
    return tuple(weights)


def teacher_scales(spectrum: Spectrum, teacher: tuple[float, ...] | None, N: int) -> np.ndarray | None:
    """The standard deviation of the teacher's weight on each of the N coordinates (N,), √τ_ℓ on
    level ℓ's, or None for the isotropic teacher (`teacher` None)."""
    return None if teacher is None else np.sqrt(np.asarray(teacher))[level_of_coordinates(spectrum, N)]
