"""The erf-mixture fallback: closed forms for activations that have none, through a fitted ĝ.

An activation g whose integrals the rules of `.gaussian` cannot reduce, but which is bounded,
levels off at ±∞ and is odd about its value at 0 (g(x) + g(−x) = 2 g(0): tanh, the sigmoid), is
replaced, in the integrals without a closed form, by

    ĝ(x) = c0 + Σ_j a_j G(s_j x),    G(x) = erf(x/√2) (the built-in erf),

fitted by least squares to g and g' under the Gaussian weights of the variances in
`FIT_VARIANCES`. Every integral of ĝ is then a weighted sum of G's closed forms on rescaled
blocks: with y_p = s_p u_p, ⟨ĝ'(u_0) ĝ'(u_1) ĝ(u_2) ĝ(u_3)⟩ = c0² J2_ĝ + Σ_jklm a_j s_j a_k s_k a_l a_m
I4_G(D C D), D = diag(s_j, s_k, s_l, s_m), and likewise for I2 (+ c0²), J2 and I3 (the u slot
unscaled); the terms odd in c0 vanish because ĝ − c0 is odd. The flows evaluated this way are
the exact flows of the activation ĝ, so they keep every structural property (symmetries,
fixed points, the symmetric reduction) while differing from g's by the fit.

The number of terms is the smallest in 1..`MAX_TERMS` for which every integral is within
`TARGET_ERROR` (relative to max(1, |value|)) of the trapezoidal rule at its reference step on
verification blocks with variances up to `MAX_VARIANCE`, the claim the trapezoidal fallback
makes; with none, the trapezoidal fallback (`.quadrature`) is used. Evaluation costs n² closed
forms per 2-slot block and n⁴ per I4 block (nndyn.core.mixture), against the trapezoidal rule's
10⁵ integrand points.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.optimize import least_squares
from scipy.special import erf

from .activations import BUILTINS, Activation, x
from .integrals import DEFINITIONS, DerivedIntegral, block_entries, derive_integral, variables
from .quadrature import MAX_VARIANCE, REFERENCE_STEP, TARGET_ERROR, evaluate

#: The most terms tried.
MAX_TERMS = 5
#: The variances whose Gaussian weights the fit minimises under (up to MAX_VARIANCE).
FIT_VARIANCES = (0.25, 0.5, 1.0, MAX_VARIANCE)
#: The fit's points: |x| ≤ 12 is 9.8 standard deviations at the largest variance.
FIT_POINTS = np.linspace(-12.0, 12.0, 4001)
#: Deterministic starts of the least-squares fit (the best is kept).
FIT_STARTS = 6
#: Coefficients are rounded to this many significant digits before verification (so that the
#: printed module holds exactly what was verified).
DIGITS = 14
#: Verification blocks per integral.
BLOCKS = 5
#: |g(x) + g(−x) − 2 g(0)| below this (relative to max |g|) counts as odd about g(0).
ODD_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ErfMixture:
    """ĝ(x) = `offset` + Σ_j a_j erf(s_j x/√2) for (a_j, s_j) in `terms`."""

    offset: float
    terms: tuple[tuple[float, float], ...]

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ĝ, ĝ') at `points`."""
        a, s = (np.array(column)[:, None] for column in zip(*self.terms))
        value = self.offset + np.sum(a * erf(s * points / np.sqrt(2)), axis=0)
        slope = np.sum(a * s * np.sqrt(2 / np.pi) * np.exp(-((s * points) ** 2) / 2), axis=0)
        return value, slope


@dataclass(frozen=True)
class ChosenMixture:
    """The fitted mixture and, per integral name, its largest error on the verification blocks."""

    mixture: ErfMixture
    errors: dict[str, float]


def _numeric(activation: Activation):
    """(g, g') as NumPy functions."""
    return (sp.lambdify(x, activation.expression, ["scipy", "numpy"]),
            sp.lambdify(x, activation.derivative, ["scipy", "numpy"]))


def applies(activation: Activation) -> bool:
    """Whether g is finite, odd about g(0) and bounded (levelling off at ±∞), numerically."""
    g, _ = _numeric(activation)
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(g(FIT_POINTS), dtype=float), FIT_POINTS.shape)
        far = np.asarray([g(sign * distance) for sign in (-1.0, 1.0) for distance in (30.0, 40.0)], dtype=float)
        centre = float(g(0.0))
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(far))):
        return False
    scale = max(1.0, float(np.max(np.abs(values))))
    odd = np.max(np.abs(values + values[::-1] - 2 * centre)) <= ODD_TOLERANCE * scale
    level = abs(far[0] - far[1]) <= 1e-9 * scale and abs(far[2] - far[3]) <= 1e-9 * scale
    return bool(odd and level)


def fit(activation: Activation, terms: int) -> ErfMixture:
    """The `terms`-term mixture closest to g and g' in the sum of L²(N(0, σ²)), σ² in
    FIT_VARIANCES (Levenberg–Marquardt from FIT_STARTS seeded starts), coefficients rounded to DIGITS."""
    g, g_prime = _numeric(activation)
    offset = float(g(0.0))
    weight = np.sqrt(sum(np.exp(-FIT_POINTS**2 / (2 * v)) / np.sqrt(2 * np.pi * v) for v in FIT_VARIANCES))
    target = np.broadcast_to(np.asarray(g(FIT_POINTS), dtype=float), FIT_POINTS.shape) - offset
    target_slope = np.broadcast_to(np.asarray(g_prime(FIT_POINTS), dtype=float), FIT_POINTS.shape)

    def residuals(p):
        value, slope = ErfMixture(0.0, tuple(zip(p[:terms], np.exp(p[terms:]))))(FIT_POINTS)
        return np.concatenate([(value - target) * weight, (slope - target_slope) * weight])

    rng = np.random.default_rng(0)
    best = None
    for _ in range(FIT_STARTS):
        start = np.concatenate([np.full(terms, target[-1] / terms), np.sort(rng.uniform(-1.5, 1.0, terms))])
        with np.errstate(all="ignore"):
            result = least_squares(residuals, start, method="lm", max_nfev=2000 * terms)
        if np.isfinite(result.cost) and (best is None or result.cost < best.cost):
            best = result
    assert best is not None  # the first start is finite for a bounded g
    rounded = [float(f"{value:.{DIGITS}g}") for value in (*best.x[:terms], *np.exp(best.x[terms:]))]
    return ErfMixture(float(f"{offset:.{DIGITS}g}"), tuple(zip(rounded[:terms], rounded[terms:])))


@functools.cache
def _erf_closed_form(name: str):
    """G's closed form of integral `name` as a NumPy function of the block entries."""
    form = derive_integral(name, tuple(None if factor == "u" else BUILTINS["erf"] for factor in DEFINITIONS[name]))
    return sp.lambdify(form.arguments, form.expression, "numpy")


#: G itself as a mixture (the built-in erf activation): exact, one term.
ERF = ErfMixture(0.0, ((1.0, 1.0),))


def known(activation: Activation) -> ErfMixture | None:
    """The exact mixture of a built-in activation that is one (erf: `ERF`), else None."""
    return ERF if activation == BUILTINS["erf"] else None


def integral(name: str, mixture: ErfMixture | tuple, block: np.ndarray) -> float:
    """Integral `name` of ĝ on the numeric block (r×r), from G's closed forms: the value the
    generated module's nndyn.core.mixture computes, here in NumPy for the verification.
    `mixture` is ĝ of every slot, or a tuple of one per slot (a student's and a teacher's
    mixtures in a pair module; anything for the u slot)."""
    factors = DEFINITIONS[name]
    r = len(factors)
    slots = mixture if isinstance(mixture, tuple) else (mixture,) * r
    scales, weights = [], []
    for p, factor in enumerate(factors):
        shape = [1] * r
        shape[p] = -1
        if factor == "u":
            scale, weight = np.ones(1), np.ones(1)
        else:
            a, s = (np.array(column) for column in zip(*slots[p].terms))
            scale, weight = s, a * s if factor == "g_prime" else a
        scales.append(scale.reshape(shape))
        weights.append(weight.reshape(shape))
    entries = [block[p, q] * scales[p] * scales[q] for p, q in block_entries(r)]
    value = float(np.sum(functools.reduce(np.multiply, weights) * _erf_closed_form(name)(*entries)))
    if name == "I2":
        value += slots[0].offset * slots[1].offset
    if name == "I4":
        value += slots[2].offset * slots[3].offset * integral("J2", slots[:2], block[:2, :2])
    return value


def reference(job: tuple[DerivedIntegral, np.ndarray]) -> float:
    """⟨f⟩ of a quadrature form on a numeric block, `job` = (form, block), by the trapezoidal
    rule at its reference step (one argument, for a process pool's map)."""
    form, block = job
    u = variables(form.size)
    entries = {symbol: block[p, q] for symbol, (p, q) in zip(form.arguments, block_entries(form.size))}
    return sum(float(term.coefficient.subs(entries)) * evaluate(term, u, block, REFERENCE_STEP[max(1, len(term.slots))])
               for term in form.quadrature)


def choose(activation: Activation, references: dict[str, list[tuple[np.ndarray, float]]]) -> ChosenMixture | None:
    """The mixture of fewest terms whose integrals are within TARGET_ERROR (relative to
    max(1, |value|)) of `references` (per integral name, numeric blocks and the reference rule's
    values there), or None when none up to MAX_TERMS reaches."""
    for terms in range(1, MAX_TERMS + 1):
        mixture = fit(activation, terms)
        errors = {name: max(abs(integral(name, mixture, block) - value) / max(1.0, abs(value))
                            for block, value in pairs)
                  for name, pairs in references.items()}
        if max(errors.values()) < TARGET_ERROR:
            return ChosenMixture(mixture, errors)
    return None
