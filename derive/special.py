"""Special functions that closed forms of non-smooth activations are written in.

Each is a SymPy function of covariance entries with its exact derivative (so that Price's identity
can be checked on closed forms that contain it), a high-precision numerical value, and a printed
name: nndyn.core.special defines a guarded JAX version of each.

- ``ZeroDensity(c)`` = 1/√(2πc), the density of N(0, c) at 0; 0 for c ≤ 0 in the kernels, where
  it multiplies a covariance that vanishes with c (a conditionally constant variable).
- ``SignPair(c_ab, c_aa, c_bb)`` = ⟨sign(u_a) sign(u_b)⟩ = (2/π) arcsin(c_ab/√(c_aa c_bb));
  0 in the kernels when c_aa c_bb ≤ 0 (sign(0) = 0).
- ``SignQuadruple(c00, c01, …, c33)`` = ⟨sign(u_0) sign(u_1) sign(u_2) sign(u_3)⟩ on a 4×4 block
  given by its 10 entries c_pq, p ≤ q. It has no elementary form. Plackett's reduction (Price's
  theorem for sign functions) gives its derivative in each correlation ρ_ij,

      ∂⟨s0 s1 s2 s3⟩/∂ρ_ij = 4 φ₂(0, 0; ρ_ij) ⟨s_k s_l | u_i = u_j = 0⟩,

  {k, l} the other two indices, and integrating along ρ(t) = t ρ from the independent block
  (value 0) with t ρ_ij = sin θ turns the value into six smooth one-dimensional integrals,

      ⟨s0 s1 s2 s3⟩ = (4/π²) Σ_{i<j} ∫_0^{arcsin ρ_ij} arcsin r_kl·ij(sin θ / ρ_ij) dθ,

  r_kl·ij(t) the partial correlation of (k, l) given (i, j) on the block with correlations t ρ.
"""

from __future__ import annotations

import itertools

import mpmath
import sympy as sp

#: Gauss–Legendre points of each Plackett integral in the kernels' SignQuadruple (a rule in the
#: half-angle tangent of θ, nndyn/core/special.py): error ~1e-16 on
#: well-conditioned blocks, < 1e-11 on singular ones without collinear pairs, < 1e-9 with
#: near-collinear pairs and < 5e-8 with three near-collinear units (tests/test_special.py).
PLACKETT_ORDER = 32

#: The (p, q), p ≤ q, entries of a 4×4 block, in SignQuadruple's argument order.
QUADRUPLE_ENTRIES = tuple((p, q) for p in range(4) for q in range(p, 4))

#: The pairs (i, j) of Plackett's reduction with their complementary pairs (k, l).
PLACKETT_PAIRS = tuple(
    ((i, j), tuple(sorted(set(range(4)) - {i, j}))) for i, j in itertools.combinations(range(4), 2)
)


def _entry(arguments, p: int, q: int):
    return arguments[QUADRUPLE_ENTRIES.index((min(p, q), max(p, q)))]


class _Elementary(sp.Function):
    """A function with an elementary form `elementary(*args)`, kept unexpanded so that the
    kernels can print a guarded version; derivatives and values come from the elementary form."""

    @staticmethod
    def elementary(*args):
        raise NotImplementedError

    def fdiff(self, argindex=1):
        dummies = sp.symbols(f"a0:{len(self.args)}", cls=sp.Dummy)
        slope = sp.diff(self.elementary(*dummies), dummies[argindex - 1])
        return slope.subs(dict(zip(dummies, self.args)), simultaneous=True)

    def _eval_evalf(self, prec):
        return self.elementary(*self.args).evalf(mpmath.libmp.prec_to_dps(prec))


class ZeroDensity(_Elementary):
    """1/√(2π c): the density of N(0, c) at zero."""

    nargs = 1

    @staticmethod
    def elementary(c):
        return 1 / sp.sqrt(2 * sp.pi * c)


class SignPair(_Elementary):
    """⟨sign(u_a) sign(u_b)⟩ = (2/π) arcsin(c_ab/√(c_aa c_bb)) for arguments (c_ab, c_aa, c_bb)."""

    nargs = 3

    @staticmethod
    def elementary(c_ab, c_aa, c_bb):
        return 2 / sp.pi * sp.asin(c_ab / sp.sqrt(c_aa * c_bb))


def _conditional_pair(arguments, pair, rest):
    """Covariance entries (c_kk, c_ll, c_kl) of (u_k, u_l) given u_i = u_j = 0."""
    (i, j), (k, l) = pair, rest
    given = sp.Matrix([[_entry(arguments, i, i), _entry(arguments, i, j)],
                       [_entry(arguments, i, j), _entry(arguments, j, j)]])
    cross = sp.Matrix([[_entry(arguments, k, i), _entry(arguments, k, j)],
                       [_entry(arguments, l, i), _entry(arguments, l, j)]])
    adjugate = given.adjugate()
    determinant = given.det()
    reduction = cross * adjugate * cross.T / determinant
    return (_entry(arguments, k, k) - reduction[0, 0], _entry(arguments, l, l) - reduction[1, 1],
            _entry(arguments, k, l) - reduction[0, 1], determinant)


class SignQuadruple(sp.Function):
    """⟨sign(u_0) sign(u_1) sign(u_2) sign(u_3)⟩ of a 4×4 block given by its entries c_pq, p ≤ q,
    in the order of `QUADRUPLE_ENTRIES`."""

    nargs = 10

    def fdiff(self, argindex=1):
        p, q = QUADRUPLE_ENTRIES[argindex - 1]
        if p != q:
            return self._off_diagonal_slope(p, q)
        # ⟨…⟩ depends on the correlations only: Σ_j c_pj ∂/∂c_pj (j ≠ p) + 2 c_pp ∂/∂c_pp = 0
        others = [j for j in range(4) if j != p]
        return -sp.Add(*[_entry(self.args, p, j) * self._off_diagonal_slope(p, j) for j in others]) / (
            2 * _entry(self.args, p, p)
        )

    def _off_diagonal_slope(self, i: int, j: int):
        """Price's identity: ∂⟨s0 s1 s2 s3⟩/∂c_ij = 4 φ₂(0, 0) ⟨s_k s_l | u_i = u_j = 0⟩."""
        rest = tuple(sorted(set(range(4)) - {i, j}))
        c_kk, c_ll, c_kl, determinant = _conditional_pair(self.args, (i, j), rest)
        return 4 / (2 * sp.pi * sp.sqrt(determinant)) * SignPair(c_kl, c_kk, c_ll)

    def _eval_evalf(self, prec):
        if not all(argument.is_number for argument in self.args):
            return None
        dps = mpmath.libmp.prec_to_dps(prec)
        with mpmath.workdps(dps + 10):
            value = plackett_value([mpmath.mpf(str(sp.N(a, dps + 10))) for a in self.args])
        return sp.Float(mpmath.re(value), dps)


def plackett_value(entries: list[mpmath.mpf], method: str = "gauss-legendre") -> mpmath.mpf:
    """⟨s0 s1 s2 s3⟩ from the 10 block entries by the θ-integrals above, with mpmath.quad
    (`method` "gauss-legendre", or "tanh-sinh" for the most robust reference) at the working
    precision: the reference for the Gauss–Legendre kernel in nndyn.core.special.

    The substitution θ = arcsin(ρ_ij) (1 - (1 - s)⁴), s ∈ [0, 1], smooths the square-root
    behaviour of the integrand at θ = arcsin ρ_ij (singular blocks)."""
    variance = [_entry(entries, p, p) for p in range(4)]
    rho = {(p, q): _entry(entries, p, q) / mpmath.sqrt(variance[p] * variance[q])
           for p, q in QUADRUPLE_ENTRIES if p != q}

    def partial_arcsin(pair, rest, theta):
        (i, j), (k, l) = pair, rest
        sin, cos2 = mpmath.sin(theta), mpmath.cos(theta) ** 2
        t = sin / rho[pair]
        ki, kj, li, lj = (t * rho[tuple(sorted(e))] for e in ((k, i), (k, j), (l, i), (l, j)))
        # conditional covariance of (k, l) given (i, j), times 1 - sin²θ
        s_kk = cos2 - (ki * ki + kj * kj - 2 * sin * ki * kj)
        s_ll = cos2 - (li * li + lj * lj - 2 * sin * li * lj)
        s_kl = t * rho[(k, l)] * cos2 - (ki * li + kj * lj - sin * (ki * lj + kj * li))
        return mpmath.asin(s_kl / mpmath.sqrt(s_kk * s_ll))  # complex only by round-off

    total = mpmath.mpf(0)
    for pair, rest in PLACKETT_PAIRS:
        if rho[pair] == 0:
            continue
        top = mpmath.asin(rho[pair])
        def integrand(s, pair=pair, rest=rest, top=top):
            return 4 * (1 - s) ** 3 * partial_arcsin(pair, rest, top * (1 - (1 - s) ** 4))

        total += top * mpmath.quad(integrand, [0, 1], method=method)
    return 4 / mpmath.pi**2 * total


#: mpmath implementations, for ``sympy.lambdify(..., modules=[MPMATH_FUNCTIONS, "mpmath"])``.
MPMATH_FUNCTIONS = {
    "ZeroDensity": lambda c: 1 / mpmath.sqrt(2 * mpmath.pi * c),
    "SignPair": lambda c_ab, c_aa, c_bb: 2 / mpmath.pi * mpmath.asin(c_ab / mpmath.sqrt(c_aa * c_bb)),
    "SignQuadruple": lambda *entries: mpmath.re(plackett_value(list(entries))),
}
