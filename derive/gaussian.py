"""Closed-form Gaussian expectations ⟨f(u)⟩ for u ~ N(0, C), derived symbolically.

The integrand ``f`` is a SymPy expression in the variables ``u`` built (after expansion) from
monomials of three kinds of factor:

* polynomials in ``u``;
* Gaussian exponentials ``exp(q(u))`` with ``q`` a homogeneous quadratic form, ``q = -½ uᵀ D u``;
* error functions ``erf(β u_a)`` of a single variable.

Each monomial is reduced by three exact rules, applied recursively:

1. *Tilting* (Gaussian integral of exp(quadratic)): ⟨exp(-½ uᵀDu) h(u)⟩_C
   = det(I + C D)^(-1/2) ⟨h(u)⟩_C' with C' = C (I + D C)⁻¹.
2. *Stein's lemma* (Gaussian integration by parts, which reduces to Isserlis/Wick for
   polynomials): ⟨u_b F(u)⟩_C = Σ_j C_bj ⟨∂_j F(u)⟩_C.
3. *Products of error functions*: zero when the monomial is odd in ``u``; the pair
   ⟨erf(α u_a) erf(β u_b)⟩ comes from Price's theorem, ∂⟨f⟩/∂C_ab = ⟨∂_a ∂_b f⟩, integrated by
   SymPy along C_ab from 0, where the expectation factorises into ⟨erf⟩⟨erf⟩ = 0.

Anything else raises :class:`NoClosedForm`, so that callers can fall back to quadrature.
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.integrals.manualintegrate import manualintegrate


class NoClosedForm(ValueError):
    """The integrand has a factor (or combination of factors) that these rules cannot reduce."""


def expectation(f: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix) -> sp.Expr:
    """⟨f(u)⟩ for u ~ N(0, C), as a SymPy expression in the entries of ``C``.

    **Arguments:**

    - `f`: the integrand, a SymPy expression in the symbols `u`.
    - `u`: the n Gaussian variables.
    - `C`: their n×n covariance, a symmetric SymPy matrix (entries may be symbols).
    """
    terms = sp.Add.make_args(sp.expand(f, power_base=False, log=False, multinomial=True))
    return sp.Add(*[_monomial(term, tuple(u), C) for term in terms])


def _monomial(term: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix) -> sp.Expr:
    n = len(u)
    constant, polynomial = sp.Integer(1), sp.Integer(1)
    precision = sp.zeros(n, n)  # D in exp(-½ uᵀ D u)
    erfs: list[tuple[int, sp.Expr]] = []  # (variable index, β) for erf(β u_a)
    for factor in sp.Mul.make_args(term):
        base, power = factor.as_base_exp()
        if not factor.has(*u):
            constant *= factor
        elif isinstance(factor, sp.exp):
            precision += _quadratic_precision(factor.exp, u)
        elif isinstance(base, sp.erf) and power.is_Integer and power > 0:
            erfs.extend([_erf_argument(base, u)] * int(power))
        elif factor.is_polynomial(*u):
            polynomial *= factor
        else:
            raise NoClosedForm(f"no closed-form rule for the factor {factor}")
    degree = sp.Poly(polynomial, *u).total_degree()
    if (degree + len(erfs)) % 2 == 1:
        return sp.Integer(0)  # odd in u: the Gaussian is symmetric under u -> -u
    if precision != sp.zeros(n, n):
        tilt = sp.eye(n) + precision * C
        tilted = (C * tilt.inv()).applyfunc(sp.cancel)
        rest = polynomial * sp.Mul(*[sp.erf(beta * u[a]) for a, beta in erfs])
        return constant * expectation(rest, u, tilted) / sp.sqrt(sp.factor(tilt.det()))
    if degree > 0:
        b = next(i for i, ui in enumerate(u) if polynomial.has(ui))
        rest = sp.cancel(polynomial / u[b]) * sp.Mul(*[sp.erf(beta * u[a]) for a, beta in erfs])
        return constant * sp.Add(
            *[C[b, j] * expectation(sp.diff(rest, u[j]), u, C) for j in range(n) if C[b, j] != 0]
        )
    if not erfs:
        return constant
    if len(erfs) == 2:
        (a, alpha), (b, beta) = erfs
        return constant * erf_pair(alpha, beta).subs(
            {_CAA: C[a, a], _CBB: C[b, b], _CAB: C[a, b]}, simultaneous=True
        )
    raise NoClosedForm(f"no closed-form rule for a product of {len(erfs)} error functions")


def _quadratic_precision(exponent: sp.Expr, u: tuple[sp.Symbol, ...]) -> sp.Matrix:
    """D such that exponent = -½ uᵀ D u; raises if the exponent is not of that form."""
    precision = -sp.hessian(exponent, u)
    quadratic = -sp.Rational(1, 2) * (sp.Matrix([u]) * precision * sp.Matrix(u))[0]
    if precision.has(*u) or sp.expand(exponent - quadratic) != 0:
        raise NoClosedForm(f"exp({exponent}) is not a Gaussian exponential of {u}")
    return precision


def _erf_argument(factor: sp.erf, u: tuple[sp.Symbol, ...]) -> tuple[int, sp.Expr]:
    argument = factor.args[0]
    used = [i for i, ui in enumerate(u) if argument.has(ui)]
    if len(used) == 1:
        beta = sp.cancel(argument / u[used[0]])
        if not beta.has(*u):
            return used[0], beta
    raise NoClosedForm(f"{factor} is not erf(β u_a) of a single variable")


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
