"""Checks that every closed form must pass before it is emitted.

1. *Price's identity*, for every entry of the block: ∂⟨f⟩/∂C_pq = ⟨∂_p ∂_q f⟩ (p ≠ q) and
   ∂⟨f⟩/∂C_pp = ½ ⟨∂_p² f⟩, for a non-smooth f as ½ ⟨∂_p f (C⁻¹u)_p⟩ (integrated by parts
   once, so that a step function's g'' = δ is enough), the right-hand sides derived independently
   of the closed form.
2. *A boundary value*: on a diagonal block the expectation factorises into one-dimensional
   integrals, computed by mpmath quadrature, independently of the derivation.
   Together, 1 and 2 determine ⟨f⟩ on the whole (connected) set of covariances.
3. *Monte Carlo*: the closed form lies within a few standard errors of a sample mean.

1 and 2 are evaluated in 30-digit arithmetic at rational random blocks; the closed form's slopes
in 1 by a central difference (step 1e-12, error ~1e-24, working precision 45 digits), so that
special functions are checked through their numerical values.
"""

from __future__ import annotations

import dataclasses
import functools
import random

import mpmath
import numpy as np
import sympy as sp

from .activations import Activation, x
from .gaussian import expectation
from .integrals import DerivedIntegral, block_entries, integrand, variables
from .mixture import BLOCKS, DIFFERENCE_STEP, ChosenMixture, Mixture, choose, family, integral, reference
from .quadrature import (
    MAX_VARIANCE,
    NON_SMOOTH,
    REFERENCE_NODES,
    REFERENCE_STEP,
    TARGET_ERROR,
    QuadratureTerm,
    choose_step,
    evaluate,
    rule,
)
from .special import MPMATH_FUNCTIONS

DIGITS = 30
STEP = "1e-12"
TOLERANCE = sp.Float(10) ** (10 - DIGITS)
MC_SAMPLES = 200_000
MC_STANDARD_ERRORS = 6
#: The random blocks each closed form is verified on (`verify`, one block per call).
RANDOM_BLOCKS = 3


class VerificationError(AssertionError):
    """A closed form failed one of the checks."""


def random_blocks(size: int, count: int, seed: int, largest: int = 4) -> list[sp.Matrix]:
    """`count` random positive-definite rational blocks, diagonal roughly in [0.05, `largest`]."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(count):
        factor = sp.Matrix(size, size, lambda p, q: sp.Rational(rng.randint(-12, 12), 8))
        jitter = sp.diag(*[sp.Rational(rng.randint(1, 20), 20) for _ in range(size)])
        block = factor * factor.T / size + jitter
        blocks.append(block * sp.nsimplify(largest) / max(largest, max(block[p, p] for p in range(size))))
    return blocks


@functools.lru_cache(maxsize=4)
def _evaluator(integral: DerivedIntegral):
    """The closed form as an mpmath function of the block entries, in the order of `arguments`
    (kept for the next task of a process pool's worker on the same form: a sign quadruple's
    lambdified I4 takes ~0.6 s)."""
    return sp.lambdify(integral.arguments, integral.expression, [MPMATH_FUNCTIONS, "mpmath"], cse=True)


def _slope(closed_form, entries: list[mpmath.mpf], index: int) -> mpmath.mpf:
    """∂ closed_form/∂ entries[index] by the central difference, error O(h²)."""
    with mpmath.workdps(DIGITS + 15):
        h = mpmath.mpf(STEP)

        def at(shift):
            moved = list(entries)
            moved[index] += shift * h
            return closed_form(*moved)

        return (at(1) - at(-1)) / (2 * h)


def _close(a: sp.Expr, b: sp.Expr) -> bool:
    a, b = sp.N(a, DIGITS), sp.N(b, DIGITS)
    return abs(a - b) <= TOLERANCE * (1 + abs(b))


def check_price(integral: DerivedIntegral, blocks: list[sp.Matrix], only: int | None = None) -> None:
    """Price's identity for every entry of the block (or only entry number `only`, in the order
    of `block_entries`), at each of `blocks`."""
    u = variables(integral.size)
    closed_form = _evaluator(integral)
    smooth = not integral.integrand.has(*NON_SMOOTH)
    for index, (p, q) in enumerate(block_entries(integral.size)):
        if only is not None and index != only:
            continue
        for block in blocks:
            with mpmath.workdps(DIGITS + 15):
                entries = [mpmath.mpf(sp.N(block[a, b], DIGITS + 15)) for a, b in block_entries(block.rows)]
            slope = sp.Float(_slope(closed_form, entries, index), DIGITS)
            if p == q and smooth:
                price = expectation(sp.diff(integral.integrand, u[p], 2), u, block) / 2
            elif p == q:
                precision_u = block.inv() * sp.Matrix(u)
                price = expectation(sp.diff(integral.integrand, u[p]) * precision_u[p], u, block) / 2
            else:
                price = expectation(sp.diff(integral.integrand, u[p], u[q]), u, block)
            if not _close(slope, price):
                raise VerificationError(
                    f"{integral.name}: Price's identity fails for C[{p},{q}] at {block.tolist()}"
                )


def _gaussian_quadrature(f: sp.Expr, var: sp.Symbol, variance: sp.Expr) -> mpmath.mpf:
    density = sp.exp(-(var**2) / (2 * variance)) / sp.sqrt(2 * sp.pi * variance)
    integrand = sp.lambdify(var, f.rewrite(sp.Piecewise) * density, "mpmath")
    return mpmath.quad(integrand, [-mpmath.inf, 0, mpmath.inf])


def check_boundary(integral: DerivedIntegral, blocks: list[sp.Matrix]) -> None:
    """On diagonal blocks the integral is a product of one-dimensional quadratures."""
    u = variables(integral.size)
    for block in blocks:
        diagonal = sp.diag(*[block[p, p] for p in range(block.rows)])
        with mpmath.workdps(DIGITS):
            factorised = mpmath.mpf(1)
            for p, var in enumerate(u):
                marginal = sp.Mul(*[f for f in sp.Mul.make_args(integral.integrand) if f.has(var)])
                factorised *= _gaussian_quadrature(marginal, var, diagonal[p, p])
            constant = sp.Mul(*[f for f in sp.Mul.make_args(integral.integrand) if not f.has(*u)])
            value = _evaluator(integral)(*[mpmath.mpf(sp.N(diagonal[p, q], DIGITS))
                                           for p, q in block_entries(diagonal.rows)])
            if not _close(value, sp.Float(factorised * mpmath.mpf(sp.N(constant, DIGITS)), DIGITS)):
                raise VerificationError(
                    f"{integral.name}: the factorised value on {diagonal.tolist()} is "
                    f"{factorised}, the closed form gives {sp.N(value, DIGITS)}"
                )


def check_monte_carlo(integral: DerivedIntegral, blocks: list[sp.Matrix], seed: int | tuple[int, ...]) -> None:
    """The closed form (or quadrature) within MC_STANDARD_ERRORS standard errors of a sample mean."""
    u = variables(integral.size)
    integrand = sp.lambdify(u, integral.integrand, ["scipy", "numpy"])
    value_of = _evaluator(integral) if integral.expression is not None else None
    rng = np.random.default_rng(seed)
    for block in blocks:
        covariance = np.array(block.evalf(), dtype=float)
        samples = rng.multivariate_normal(np.zeros(integral.size), covariance, MC_SAMPLES)
        values = np.broadcast_to(integrand(*samples.T), (MC_SAMPLES,))
        mean, error = values.mean(), values.std(ddof=1) / np.sqrt(MC_SAMPLES)
        if value_of is not None:
            value = float(value_of(*[mpmath.mpf(sp.N(block[p, q], 20)) for p, q in block_entries(integral.size)]))
        else:
            value = quadrature_value(integral, covariance)
        if not abs(mean - value) <= MC_STANDARD_ERRORS * error + 1e-15:
            raise VerificationError(
                f"{integral.name}: Monte Carlo gives {mean} ± {error}, the derived value {value}"
            )


def quadrature_value(integral: DerivedIntegral, block: np.ndarray) -> float:
    """Σ coefficient · ⟨term⟩ of a quadrature integral on a numeric block, at the terms' steps."""
    u = variables(integral.size)
    entries = [block[p, q] for p, q in block_entries(integral.size)]
    return sum(float(sp.lambdify(integral.arguments, term.coefficient)(*entries)) * evaluate(term, u, block, term.step,
                                                                                            term.nodes)
               for term in integral.quadrature)


def verify_quadrature(integral: DerivedIntegral, seed: int = 0) -> tuple[DerivedIntegral, str]:
    """Choose each quadrature term's step on random blocks, then check the sum against Monte
    Carlo; returns the integral with its steps and a one-line record."""
    blocks = random_blocks(integral.size, 3, seed, largest=MAX_VARIANCE)
    numeric = [np.array(block.evalf(), dtype=float) for block in blocks]
    u = variables(integral.size)
    terms = tuple(choose_step(term, u, numeric) for term in integral.quadrature)
    chosen = dataclasses.replace(integral, quadrature=terms)
    check_monte_carlo(chosen, blocks, seed)
    steps = ", ".join(map(_rule, (term for term in terms if term.slots)))
    return chosen, (
        f"quadrature, {steps}, at {len(blocks)} random blocks with variances up to "
        f"{MAX_VARIANCE}, Monte Carlo within "
        f"{MC_STANDARD_ERRORS} SE ({MC_SAMPLES} samples)"
    )


def _rule(term: QuadratureTerm) -> str:
    """A quadrature term's rule and its error against the reference, in words."""
    size = len(term.slots)
    if not term.kinks:
        return (f"{size}-d trapezoidal rule of step {term.step} ({len(rule(term.step, size)[1])} points, error "
                f"{term.error:.1g} against step {REFERENCE_STEP[size]})")
    grid = f" × the {size - 2}-d trapezoidal rule of step {term.step}" if size > 2 else ""
    return (f"{size}-d piecewise rule across the kinks of {len(term.kinks)} variable(s), {term.nodes} nodes per ray "
            f"and per arc on {len(term.signs)} arc(s){grid} (error {term.error:.1g} against {REFERENCE_NODES} "
            "nodes, and a nearly collinear block)")


def verify(integral: DerivedIntegral, block: int, entry: int | None, seed: int = 0) -> str:
    """One part of the checks on `integral` at random block number `block` (of RANDOM_BLOCKS):
    Price's identity for entry number `entry` (of `block_entries`), or, with `entry` None, the
    factorised diagonal value and Monte Carlo seeded by (seed, block), so that a process pool
    checks the parts of one form side by side (Price's identity is most of the time: ~2.5 s per
    entry of GELU's I4). Returns the one-line record of what all the parts together check."""
    chosen = [random_blocks(integral.size, RANDOM_BLOCKS, seed)[block]]
    if entry is not None:
        check_price(integral, chosen, only=entry)
    else:
        check_boundary(integral, chosen)
        check_monte_carlo(integral, chosen, (seed, block))
    return (
        f"Price's identity for all {len(block_entries(integral.size))} entries and the "
        f"factorised diagonal value at {RANDOM_BLOCKS} random blocks (to 1e-{DIGITS - 10}), "
        f"Monte Carlo within {MC_STANDARD_ERRORS} SE ({MC_SAMPLES} samples)"
    )


def verify_mixture(activation: Activation, forms: list[DerivedIntegral], map=map,
                   seed: int = 0) -> tuple[ChosenMixture, dict[str, str]] | None:
    """The mixture (`.mixture`) of g whose integrals `forms` (g's quadrature forms) are within
    TARGET_ERROR of g's on BLOCKS random blocks with variances up to MAX_VARIANCE each, with a
    one-line record per integral: an erf mixture against the trapezoidal rule at its reference
    step, a smoothed-ReLU mixture by the trapezoidal rule on the difference of the integrands.
    None where g admits neither (`.mixture.family`), or no mixture reaches. `map` spreads the
    reference rule's evaluations (a process pool's map)."""
    base = family(activation)
    if base is None:
        return None
    jobs = [(form, np.array(block.evalf(), dtype=float))
            for form in forms for block in random_blocks(form.size, BLOCKS, seed, largest=MAX_VARIANCE)]
    values = list(map(reference, jobs)) if base == "erf" else [0.0] * len(jobs)  # "relu": `difference`'s own
    references: dict[str, list[tuple[np.ndarray, float]]] = {form.name: [] for form in forms}
    for (form, block), value in zip(jobs, values):
        references[form.name].append((block, value))
    chosen = choose(activation, references, base)
    if chosen is None:
        return None
    terms = len(chosen.mixture.terms)
    against = ("against the trapezoidal rule at its reference step" if base == "erf" else
               f"by the trapezoidal rule of step {DIFFERENCE_STEP} on the difference from g's integrand")
    records = {name: f"{chosen.mixture.kind} of {terms} terms, error {error:.1g} (below {TARGET_ERROR:g}) {against} "
               f"at {BLOCKS} random blocks with variances up to {MAX_VARIANCE}"
               for name, error in chosen.errors.items()}
    return chosen, records


def verify_mixtures(name: str, form: DerivedIntegral, slots: tuple, map=map, seed: int = 0) -> str | None:
    """The record of a mixed integral `name` without a closed form (`form`, a quadrature form) evaluated
    by the erf mixtures of its slots' activations (`slots`, one `.mixture.Mixture` per slot,
    None for the u slot): within TARGET_ERROR of the trapezoidal rule at its reference step on
    BLOCKS random blocks with variances up to MAX_VARIANCE; None where it is not."""
    blocks = [np.array(block.evalf(), dtype=float) for block in random_blocks(form.size, BLOCKS, seed,
                                                                               largest=MAX_VARIANCE)]
    values = list(map(reference, [(form, block) for block in blocks]))
    error = max(abs(integral(name, slots, block) - value) / max(1.0, abs(value))
                for block, value in zip(blocks, values))
    if error >= TARGET_ERROR:
        return None
    return (f"erf mixtures of the student's and the teacher's activations, error {error:.1g} (below {TARGET_ERROR:g}) "
            f"against the trapezoidal rule at its reference step at {BLOCKS} random blocks with variances up to "
            f"{MAX_VARIANCE}")


def verify_exact_with_mixture(name: str, form: DerivedIntegral, activations: tuple, slots: tuple, base: str,
                              seed: int = 0) -> str | None:
    """The record of a mixed integral `name` without a closed form (`form`, its integrand f)
    evaluated by the closed forms of `base` (a built-in module: a pair module of an exact
    activation and erf for an erf mixture; ReLU's own, or its pair module with an exact
    activation, for a smoothed-ReLU mixture) summed over the terms of the mixture: `activations`
    are the slots' activations (None for the u slot), `slots` the `Mixture` replacing each (None
    where the slot keeps its exact activation). The mixture's error |⟨f̂ − f⟩|, f̂ the integrand
    with the mixtures, is estimated by Monte Carlo of the difference f̂ − f on one set of samples
    (its standard error is that of a small difference, ~1e-8, where a sample mean of f alone has
    ~1e-3), and its mean plus
    MC_STANDARD_ERRORS standard errors must be below TARGET_ERROR (relative to max(1, |⟨f⟩|)) at
    BLOCKS random blocks with variances up to MAX_VARIANCE; None where it is not. `base`'s closed
    forms are verified in their own module; their sum over the terms is tests/test_user_activation.py's."""
    u = variables(form.size)
    fitted = tuple(activation if mixture is None else _mixture_activation(activation, mixture)
                   for activation, mixture in zip(activations, slots))
    difference = sp.lambdify(u, integrand(name, fitted, u) - form.integrand, ["scipy", "numpy"])
    exact = sp.lambdify(u, form.integrand, ["scipy", "numpy"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for block in random_blocks(form.size, BLOCKS, seed, largest=MAX_VARIANCE):
        samples = rng.multivariate_normal(np.zeros(form.size), np.array(block.evalf(), dtype=float), MC_SAMPLES)
        values = np.broadcast_to(difference(*samples.T), (MC_SAMPLES,))
        scale = max(1.0, abs(float(np.mean(np.broadcast_to(exact(*samples.T), (MC_SAMPLES,))))))
        bound = (abs(values.mean()) + MC_STANDARD_ERRORS * values.std(ddof=1) / np.sqrt(MC_SAMPLES)) / scale
        worst = max(worst, bound)
    if not worst < TARGET_ERROR:
        return None
    mixture = next(slot for slot in slots if slot is not None)
    return (f"{mixture.kind} of {len(mixture.terms)} terms in {base}'s closed forms, the mixture's error "
            "|<f^ - f>| at most "
            f"{worst:.1g} (below {TARGET_ERROR:g}; Monte Carlo of the difference, {MC_SAMPLES} samples, mean + "
            f"{MC_STANDARD_ERRORS} SE) at {BLOCKS} random blocks with variances up to {MAX_VARIANCE}")


def _mixture_activation(activation: Activation, mixture: Mixture) -> Activation:
    """ĝ of `mixture` as an activation (for its integrands): c0 + Σ_j a_j erf(s_j x/√2), or
    Σ_j a_j Ψ(s_j x), Ψ(y) = y Φ(y) + φ(y)."""
    def base(y: sp.Expr) -> sp.Expr:
        if mixture.base == "relu":
            return y * (1 + sp.erf(y / sp.sqrt(2))) / 2 + sp.exp(-(y**2) / 2) / sp.sqrt(2 * sp.pi)
        return sp.erf(y / sp.sqrt(2))

    expression = sp.Float(mixture.offset) + sp.Add(*(sp.Float(a) * base(sp.Float(s) * x) for a, s in mixture.terms))
    return Activation(f"{activation.name}_mixture", expression, f"the {mixture.kind} of {activation.name}")
