"""Closed-form Gaussian expectations ⟨f(u)⟩ for u ~ N(0, C), derived symbolically.

The integrand ``f`` is a SymPy expression in the variables ``u`` built (after expansion) from
monomials of these kinds of factor:

* polynomials in ``u``;
* Gaussian exponentials ``exp(q(u))`` with ``q`` a homogeneous quadratic form, ``q = -½ uᵀ D u``;
* error functions ``erf(β u_a)`` of a single variable;
* sign functions ``sign(u_a)`` and Dirac deltas ``δ(u_a)``; Heaviside steps and ``Max(0, ·)``
  (ReLU) are first rewritten as H(u) = (1 + sign u)/2, so H(0) = ½.

Each monomial is reduced by exact rules, applied recursively:

1. *Conditioning* on a delta: ⟨δ(u_a) F(u)⟩_C = φ(0; C_aa) ⟨F(u)|_{u_a=0}⟩_C', with
   C' = C - C_{·a} C_{a·}/C_aa the covariance given u_a = 0.
2. *Tilting* (Gaussian integral of exp(quadratic)): ⟨exp(-½ uᵀDu) h(u)⟩_C
   = det(I + C D)^(-1/2) ⟨h(u)⟩_C' with C' = C (I + D C)⁻¹. The first tilt's C' (and that of a
   numeric block) is simplified entry by entry; a tilt of an already tilted symbolic covariance
   (products of x, Gaussians and erf, as in GELU's I4) takes ⟨h⟩ on a block of fresh symbols and
   substitutes C' into the result, since simplifying nested rational entries swells without
   bound (GELU's I4: > 15 min → 10 s).
3. *Stein's lemma* (Gaussian integration by parts, which reduces to Isserlis/Wick for
   polynomials): ⟨u_b F(u)⟩_C = Σ_j C_bj ⟨∂_j F(u)⟩_C, with ∂ sign(u) = 2 δ(u).
4. *Products of odd functions*: zero when the monomial is odd in ``u``; the pair
   ⟨erf(α u_a) erf(β u_b)⟩ comes from Price's theorem, ∂⟨f⟩/∂C_ab = ⟨∂_a ∂_b f⟩, integrated by
   SymPy along C_ab from 0, where the expectation factorises into ⟨erf⟩⟨erf⟩ = 0; the sign
   pair and quadruple are the special functions of `.special` (the quadruple, an orthant
   probability, is not elementary).
5. *Error functions as signs*: erf(β u) = sign(β) ⟨sign(u + z/(√2|β|))⟩_z, z ~ N(0, 1), so a
   product of error functions and signs (mixed activations, e.g. a ReLU student on an erf
   teacher) is a sign pair or quadruple on a covariance with 1/(2β²) added to each erf's variance.

Anything else raises `NoClosedForm`, so that callers can fall back to quadrature.
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.integrals.manualintegrate import manualintegrate

from . import budget
from .special import SignPair, SignQuadruple, ZeroDensity


class NoClosedForm(ValueError):
    """The integrand has a factor (or combination of factors) that these rules cannot reduce."""


def expectation(f: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix, tilted: bool = False) -> sp.Expr:
    """⟨f(u)⟩ for u ~ N(0, C), as a SymPy expression in the entries of ``C``.

    **Arguments:**

    - `f`: the integrand, a SymPy expression in the symbols `u`.
    - `u`: the n Gaussian variables.
    - `C`: their n×n covariance, a symmetric SymPy matrix (entries may be symbols).
    - `tilted`: whether `C` is already a tilted covariance (rule 2: a further tilt is then taken
      on fresh symbols); the recursion sets it, callers leave it False.

    Checks the derivation's time budget (`.budget`) at every level of the recursion.
    """
    budget.check()
    f = f.rewrite(sp.Heaviside).rewrite(sp.sign) if f.has(sp.Max, sp.Min, sp.Heaviside) else f
    terms = sp.Add.make_args(sp.expand(f, power_base=False, log=False, multinomial=True))
    return sp.Add(*[_monomial(term, tuple(u), C, tilted) for term in terms])


def _single_variable(factor: sp.Expr, u: tuple[sp.Symbol, ...]) -> tuple[int, sp.Expr]:
    """(a, β) for a function of β u_a, β free of u."""
    argument = factor.args[0]
    used = [i for i, ui in enumerate(u) if argument.has(ui)]
    if len(used) == 1:
        beta = sp.cancel(argument / u[used[0]])
        if not beta.has(*u):
            return used[0], beta
    raise NoClosedForm(f"{factor} is not a function of β u_a for a single variable u_a")


def _condition(term: sp.Expr, delta: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix, tilted: bool) -> sp.Expr:
    """⟨δ(β u_a) rest⟩ by rule 1 (δ(β u) = δ(u)/|β|)."""
    if len(delta.args) > 1:
        raise NoClosedForm(f"no closed-form rule for the derivative {delta}")
    a, beta = _single_variable(delta, u)
    rest = (term / delta).subs(u[a], 0)
    if rest.has(sp.DiracDelta(0)) or rest.has(sp.zoo, sp.oo):
        raise NoClosedForm(f"two deltas of the same variable in {term}")
    given = (C - C[:, a] * C[a, :] / C[a, a]).applyfunc(sp.cancel)
    return ZeroDensity(C[a, a]) / sp.Abs(beta) * expectation(rest, u, given, tilted)


def _monomial(term: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix, tilted: bool) -> sp.Expr:
    n = len(u)
    constant, polynomial = sp.Integer(1), sp.Integer(1)
    precision = sp.zeros(n, n)  # D in exp(-½ uᵀ D u)
    erfs: list[tuple[int, sp.Expr]] = []  # (variable index, β) for erf(β u_a)
    signs: set[int] = set()  # variable indices a of sign(u_a) (sign² = 1 almost surely)
    for factor in sp.Mul.make_args(term):
        base, power = factor.as_base_exp()
        if not factor.has(*u):
            constant *= factor
        elif isinstance(factor, sp.DiracDelta):
            return _condition(term, factor, u, C, tilted)
        elif isinstance(factor, sp.exp):
            precision += _quadratic_precision(factor.exp, u)
        elif isinstance(base, sp.erf) and power.is_Integer and power > 0:
            erfs.extend([_single_variable(base, u)] * int(power))
        elif isinstance(base, sp.sign) and power.is_Integer and power > 0:
            a, beta = _single_variable(base, u)
            constant *= sp.sign(beta) ** power
            signs ^= {a} if power % 2 else set()
        elif factor.is_polynomial(*u):
            polynomial *= factor
        else:
            raise NoClosedForm(f"no closed-form rule for the factor {factor}")
    degree = sp.Poly(polynomial, *u).total_degree()
    if (degree + len(erfs) + len(signs)) % 2 == 1:
        return sp.Integer(0)  # odd in u: the Gaussian is symmetric under u -> -u
    odd = sp.Mul(*[sp.erf(beta * u[a]) for a, beta in erfs]) * sp.Mul(*[sp.sign(u[a]) for a in sorted(signs)])
    if precision != sp.zeros(n, n):
        tilt = sp.eye(n) + precision * C
        determinant = sp.factor(tilt.det())
        if not tilted or not C.free_symbols:  # the first tilt or a numeric C: C' simplified
            tilted_C = (C * tilt.inv()).applyfunc(sp.cancel)
            return constant * expectation(polynomial * odd, u, tilted_C, True) / sp.sqrt(determinant)
        generic, tilted_C = _generic_block(n), C * tilt.adjugate() / determinant  # a tilt of a tilted C
        inner = expectation(polynomial * odd, u, generic)
        tilted = inner.xreplace({generic[p, q]: tilted_C[p, q] for p, q in block_entries(n)})
        return constant * tilted / sp.sqrt(determinant)
    if degree > 0:
        b = next(i for i, ui in enumerate(u) if polynomial.has(ui))
        rest = sp.cancel(polynomial / u[b]) * odd
        return constant * sp.Add(
            *[C[b, j] * expectation(sp.diff(rest, u[j]), u, C, tilted) for j in range(n) if C[b, j] != 0]
        )
    if not erfs and not signs:
        return constant
    if len(erfs) == 2 and not signs:
        (a, alpha), (b, beta) = erfs
        return constant * erf_pair(alpha, beta).subs(
            {_CAA: C[a, a], _CBB: C[b, b], _CAB: C[a, b]}, simultaneous=True
        )
    if len(erfs) + len(signs) in (2, 4):
        return constant * _sign_product(erfs, sorted(signs), C)
    raise NoClosedForm(f"no closed-form rule for the product {odd}")


def _sign_product(erfs: list[tuple[int, sp.Expr]], signs: list[int], C: sp.Matrix) -> sp.Expr:
    """⟨Π erf(β u_a) Π sign(u_b)⟩ for two or four factors, by rule 5: each erf(β u_a) is
    sign(β)·⟨sign(u_a + z/(√2|β|))⟩_z with its own z ~ N(0, 1), so the product is a sign pair or
    quadruple of variables w whose covariance is C's plus 1/(2β²) on each erf's own variance."""
    slots = [(a, 1 / (2 * beta**2)) for a, beta in erfs] + [(b, sp.Integer(0)) for b in signs]
    sign = sp.Mul(*[sp.sign(beta) for _, beta in erfs])
    count = len(slots)
    W = sp.Matrix(count, count, lambda p, q: C[slots[p][0], slots[q][0]] + (slots[p][1] if p == q else 0))
    if count == 2:
        return sign * SignPair(W[0, 1], W[0, 0], W[1, 1])
    return sign * SignQuadruple(*[W[p, q] for p in range(4) for q in range(p, 4)])


@functools.cache
def _generic_block(n: int) -> sp.ImmutableMatrix:
    """A symmetric n×n block of fresh entry symbols t{p}{q}, standing for a tilted covariance
    until the expectation on it is known."""
    block = sp.zeros(n, n)
    for p, q in block_entries(n):
        block[p, q] = block[q, p] = sp.Symbol(f"t{p}{q}", real=True, nonnegative=(p == q) or None)
    return sp.ImmutableMatrix(block)


def block_entries(size: int) -> list[tuple[int, int]]:
    """The (p, q) positions, p ≤ q, of a symmetric block's free entries, row-major."""
    return [(p, q) for p in range(size) for q in range(p, size)]


def _quadratic_precision(exponent: sp.Expr, u: tuple[sp.Symbol, ...]) -> sp.Matrix:
    """D such that exponent = -½ uᵀ D u; raises if the exponent is not of that form."""
    precision = -sp.hessian(exponent, u)
    quadratic = -sp.Rational(1, 2) * (sp.Matrix([u]) * precision * sp.Matrix(u))[0]
    if precision.has(*u) or sp.expand(exponent - quadratic) != 0:
        raise NoClosedForm(f"exp({exponent}) is not a Gaussian exponential of {u}")
    return precision


_CAA, _CBB = sp.symbols("c_aa c_bb", nonnegative=True)
_CAB, _S = sp.symbols("c_ab s", real=True)


@functools.cache
def erf_pair(alpha: sp.Expr, beta: sp.Expr) -> sp.Expr:
    """⟨erf(α u_a) erf(β u_b)⟩ in the block entries c_aa, c_bb, c_ab, derived by Price's theorem.

    ∂/∂c_ab of the expectation is ⟨∂_a erf(α u_a) ∂_b erf(β u_b)⟩, a Gaussian exponential
    (rule 1); SymPy integrates it along c_ab from 0, where the expectation is ⟨erf⟩⟨erf⟩ = 0.
    The result is checked by differentiating it back.
    """
    ua, ub = sp.symbols("u_a u_b", real=True)
    block = sp.Matrix([[_CAA, _S], [_S, _CBB]])
    integrand = sp.diff(sp.erf(alpha * ua), ua) * sp.diff(sp.erf(beta * ub), ub)
    slope = expectation(integrand, (ua, ub), block)
    antiderivative = manualintegrate(slope, _S)
    if antiderivative.has(sp.Integral):
        raise NoClosedForm(f"SymPy could not integrate {slope} along c_ab")
    value = antiderivative.subs(_S, _CAB) - antiderivative.subs(_S, 0)
    if sp.simplify(sp.diff(value, _CAB) - slope.subs(_S, _CAB)) != 0:
        raise NoClosedForm("the Price integral does not differentiate back to its integrand")
    return value
