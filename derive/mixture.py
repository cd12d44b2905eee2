"""The mixture fallbacks: closed forms for activations that have none, through a fitted ĝ.

An activation g whose integrals the rules of `.gaussian` cannot reduce, but which is bounded,
levels off at ±∞ and is odd about its value at 0 (g(x) + g(−x) = 2 g(0): tanh, the sigmoid), is
replaced, in the integrals without a closed form, by an *erf mixture*

    ĝ(x) = c0 + Σ_j a_j G(s_j x),    G(x) = erf(x/√2) (the built-in erf),

fitted by least squares to g and g' under the Gaussian weights of the variances in
`FIT_VARIANCES`. Every integral of ĝ is then a weighted sum of G's closed forms on rescaled
blocks: with y_p = s_p u_p, ⟨ĝ'(u_0) ĝ'(u_1) ĝ(u_2) ĝ(u_3)⟩ = c0² J2_ĝ + Σ_jklm a_j s_j a_k s_k a_l a_m
I4_G(D C D), D = diag(s_j, s_k, s_l, s_m), and likewise for I2 (+ c0²), J2 and I3 (the u slot
unscaled); the terms odd in c0 vanish because ĝ − c0 is odd. The flows evaluated this way are
the exact flows of the activation ĝ, so they keep every structural property (symmetries,
fixed points, the symmetric reduction) while differing from g's by the fit.

An activation that instead rises like a ReLU (finite, vanishing at −∞ and growing linearly at
+∞: softplus, log(1 + exp(βx))/β) takes a *smoothed-ReLU mixture*

    ĝ(x) = Σ_j a_j Ψ(s_j x),    Ψ(y) = E_z ReLU(y + z) = y Φ(y) + φ(y), z ~ N(0, 1),

whose derivative Σ_j a_j s_j Φ(s_j x) is an erf mixture of g' (softplus' sigmoid). Since
Ψ(s u) = E_z ReLU(s u + z) and Φ(s u) = E_z H(s u + z), each integral of ĝ is a weighted sum of
ReLU's closed forms on the blocks S C S + I (an independent unit-variance z per slot),
nndyn.core.mixture.relu_mixtures.

The number of terms is the smallest in 1..`MAX_TERMS` for which every integral is within
`TARGET_ERROR` (relative to max(1, |value|)) of g's: for an erf mixture, G's closed forms
against the trapezoidal rule at its reference step on verification blocks with variances up
to `MAX_VARIANCE`, the claim the trapezoidal fallback makes; for a smoothed-ReLU mixture, the
trapezoidal rule of step `DIFFERENCE_STEP` on the difference of the integrands (smooth and
small, so the rule's own error is far below the mixture's), on the same blocks. With none, the
trapezoidal fallback (`.quadrature`) is used. Evaluation costs n² closed forms per 2-slot block
and n⁴ per I4 block (nndyn.core.mixture), against the trapezoidal rule's 10⁵ integrand points.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.optimize import least_squares
from scipy.special import erf, ndtr

from .activations import BUILTINS, Activation, x
from .integrals import DEFINITIONS, DerivedIntegral, block_entries, derive_integral, variables
from .quadrature import MAX_VARIANCE, REFERENCE_STEP, TARGET_ERROR, evaluate, rule

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
#: The trapezoidal rule's step for the difference of a smoothed-ReLU mixture's integrands from g's.
DIFFERENCE_STEP = 0.3


@dataclass(frozen=True)
class Mixture:
    """ĝ(x) = `offset` + Σ_j a_j B(s_j x) for (a_j, s_j) in `terms`, B the `base`: "erf",
    G(x) = erf(x/√2), or "relu", Ψ(x) = E_z ReLU(x + z) = x Φ(x) + φ(x) (offset 0)."""

    offset: float
    terms: tuple[tuple[float, float], ...]
    base: str = "erf"

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ĝ, ĝ') at `points`."""
        a, s = (np.array(column)[:, None] for column in zip(*self.terms))
        y = s * points
        if self.base == "relu":
            density = np.exp(-(y**2) / 2) / np.sqrt(2 * np.pi)
            return np.sum(a * (y * ndtr(y) + density), axis=0), np.sum(a * s * ndtr(y), axis=0)
        value = self.offset + np.sum(a * erf(y / np.sqrt(2)), axis=0)
        slope = np.sum(a * s * np.sqrt(2 / np.pi) * np.exp(-(y**2) / 2), axis=0)
        return value, slope

    def jacobian(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The derivatives of (ĝ, ĝ') at `points` with respect to the fit's parameters
        (a_1, …, a_n, log s_1, …, log s_n): two arrays (2n, len(points))."""
        a, s = (np.array(column)[:, None] for column in zip(*self.terms))
        y = s * points
        if self.base == "relu":
            density, cumulative = np.exp(-(y**2) / 2) / np.sqrt(2 * np.pi), ndtr(y)
            value = np.concatenate([y * cumulative + density, a * y * cumulative])
            slope = np.concatenate([s * cumulative, a * s * (cumulative + y * density)])
            return value, slope
        derivative = np.sqrt(2 / np.pi) * np.exp(-(y**2) / 2)  # G'(y)
        value = np.concatenate([erf(y / np.sqrt(2)), a * y * derivative])
        slope = np.concatenate([s * derivative, a * s * derivative * (1 - y**2)])
        return value, slope

    @property
    def kind(self) -> str:
        """The mixture's name in words ("erf mixture", "smoothed-ReLU mixture")."""
        return {"erf": "erf mixture", "relu": "smoothed-ReLU mixture"}[self.base]


@dataclass(frozen=True)
class ChosenMixture:
    """The fitted mixture and, per integral name, its largest error on the verification blocks."""

    mixture: Mixture
    errors: dict[str, float]


def _numeric(activation: Activation):
    """(g, g') as NumPy functions."""
    return (sp.lambdify(x, activation.expression, ["scipy", "numpy"]),
            sp.lambdify(x, activation.derivative, ["scipy", "numpy"]))


def family(activation: Activation) -> str | None:
    """The base of the mixture g admits, numerically: "erf" where g is finite, odd about g(0)
    and bounded (levelling off at ±∞); "relu" where g is finite, vanishes at −∞ and grows
    linearly at +∞ (its slope levelling off at a positive value); else None."""
    g, g_prime = _numeric(activation)
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(g(FIT_POINTS), dtype=float), FIT_POINTS.shape)
        far = np.asarray([g(sign * distance) for sign in (-1.0, 1.0) for distance in (30.0, 40.0)], dtype=float)
        slopes = np.asarray([g_prime(distance) for distance in (30.0, 40.0)], dtype=float)
        centre = float(g(0.0))
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(far)) and np.all(np.isfinite(slopes))):
        return None
    scale = max(1.0, float(np.max(np.abs(values))))
    odd = np.max(np.abs(values + values[::-1] - 2 * centre)) <= ODD_TOLERANCE * scale
    level = abs(far[0] - far[1]) <= 1e-9 * scale and abs(far[2] - far[3]) <= 1e-9 * scale
    if odd and level:
        return "erf"
    vanishing = abs(far[0]) <= 1e-9 * scale and abs(far[1]) <= 1e-9 * scale
    rising = slopes[1] > 0 and abs(slopes[0] - slopes[1]) <= 1e-9 * slopes[1] and \
        abs(far[3] - far[2] - 10 * slopes[1]) <= 1e-6 * far[3]
    return "relu" if vanishing and rising else None


def fit(activation: Activation, terms: int, base: str = "erf") -> Mixture:
    """The `terms`-term mixture of `base` closest to g and g' in the sum of L²(N(0, σ²)), σ² in
    FIT_VARIANCES (Levenberg–Marquardt from FIT_STARTS seeded starts), coefficients rounded to
    DIGITS; an erf mixture's offset is g(0), a smoothed-ReLU mixture's 0."""
    g, g_prime = _numeric(activation)
    offset = float(g(0.0)) if base == "erf" else 0.0
    weight = np.sqrt(sum(np.exp(-FIT_POINTS**2 / (2 * v)) / np.sqrt(2 * np.pi * v) for v in FIT_VARIANCES))
    target = np.broadcast_to(np.asarray(g(FIT_POINTS), dtype=float), FIT_POINTS.shape) - offset
    target_slope = np.broadcast_to(np.asarray(g_prime(FIT_POINTS), dtype=float), FIT_POINTS.shape)
    # the starts' weights: an erf mixture's sum to g's level at +∞, a smoothed-ReLU mixture's
    # a_j s_j to g's slope there (for s_j ≈ 1)
    level = target[-1] if base == "erf" else target_slope[-1]

    def residuals(p):
        value, slope = Mixture(0.0, tuple(zip(p[:terms], np.exp(p[terms:]))), base)(FIT_POINTS)
        return np.concatenate([(value - target) * weight, (slope - target_slope) * weight])

    def jacobian(p):
        value, slope = Mixture(0.0, tuple(zip(p[:terms], np.exp(p[terms:]))), base).jacobian(FIT_POINTS)
        return np.concatenate([value * weight, slope * weight], axis=1).T

    rng = np.random.default_rng(0)
    best = None
    for _ in range(FIT_STARTS):
        start = np.concatenate([np.full(terms, level / terms), np.sort(rng.uniform(-1.5, 1.0, terms))])
        with np.errstate(all="ignore"):
            result = least_squares(residuals, start, jac=jacobian, method="lm", max_nfev=2000 * terms)
        if np.isfinite(result.cost) and (best is None or result.cost < best.cost):
            best = result
    assert best is not None  # the first start is finite for a g that `family` admits
    rounded = [float(f"{value:.{DIGITS}g}") for value in (*best.x[:terms], *np.exp(best.x[terms:]))]
    return Mixture(float(f"{offset:.{DIGITS}g}"), tuple(zip(rounded[:terms], rounded[terms:])), base)


@functools.cache
def _erf_closed_form(name: str):
    """G's closed form of integral `name` as a NumPy function of the block entries."""
    form = derive_integral(name, tuple(None if factor == "u" else BUILTINS["erf"] for factor in DEFINITIONS[name]))
    return sp.lambdify(form.arguments, form.expression, "numpy")


#: G itself as a mixture (the built-in erf activation): exact, one term.
ERF = Mixture(0.0, ((1.0, 1.0),))


def known(activation: Activation) -> Mixture | None:
    """The exact mixture of a built-in activation that is one (erf: `ERF`), else None."""
    return ERF if activation == BUILTINS["erf"] else None


def integral(name: str, mixture: Mixture | tuple, block: np.ndarray) -> float:
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


def difference(name: str, activation: Activation, mixture: Mixture, block: np.ndarray) -> tuple[float, float]:
    """(⟨f̂ − f⟩, ⟨f⟩) of integral `name` on the numeric block, f the integrand with g in every
    slot and f̂ with the mixture, both by the trapezoidal rule of step DIFFERENCE_STEP on the
    block's eigen-root (f̂ − f is smooth and small: the rule's error on it is far below the
    mixture's)."""
    g, g_prime = _numeric(activation)
    factors = DEFINITIONS[name]
    values, vectors = np.linalg.eigh(block)
    z, w = rule(DIFFERENCE_STEP, len(factors))
    u = z @ (vectors * np.sqrt(np.clip(values, 0.0, None))).T
    exact, fitted = np.ones(len(w)), np.ones(len(w))
    for p, factor in enumerate(factors):
        if factor == "u":
            exact, fitted = exact * u[:, p], fitted * u[:, p]
            continue
        value, slope = mixture(u[:, p])
        with np.errstate(all="ignore"):
            own = np.broadcast_to(np.asarray((g_prime if factor == "g_prime" else g)(u[:, p]), dtype=float), (len(w),))
        exact, fitted = exact * own, fitted * (slope if factor == "g_prime" else value)
    return float(np.sum(w * (fitted - exact))), float(np.sum(w * exact))


def choose(activation: Activation, references: dict[str, list[tuple[np.ndarray, float]]],
           base: str = "erf") -> ChosenMixture | None:
    """The mixture of `base` with the fewest terms whose integrals are within TARGET_ERROR
    (relative to max(1, |value|)) of g's on the blocks of `references` (per integral name, numeric
    blocks and, for an erf mixture, the reference rule's values there; a smoothed-ReLU mixture
    takes `difference`), or None when none up to MAX_TERMS reaches."""
    def error(name: str, mixture: Mixture, block: np.ndarray, value: float) -> float:
        if base == "erf":
            return abs(integral(name, mixture, block) - value) / max(1.0, abs(value))
        gap, exact = difference(name, activation, mixture, block)
        return abs(gap) / max(1.0, abs(exact))

    for terms in range(1, MAX_TERMS + 1):
        mixture = fit(activation, terms, base)
        errors = {name: max(error(name, mixture, block, value) for block, value in pairs)
                  for name, pairs in references.items()}
        if max(errors.values()) < TARGET_ERROR:
            return ChosenMixture(mixture, errors)
    return None
