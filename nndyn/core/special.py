"""The JAX functions that generated closed forms call, beside `jax.numpy`: guarded elementary
functions, the special functions of step-function closed forms (derive/special.py defines them
symbolically; these are their numerical versions), and the test of coincident units.

Every function is elementwise over broadcast arrays of block entries c_pq and safe at the
boundary of the covariances (singular blocks, round-off past |ρ| = 1): it returns the limit,
never NaN.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


def broadcast(value, *arguments):
    """`value` broadcast to the common shape of `arguments` (closed forms may be constants)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(argument) for argument in arguments))
    return jnp.broadcast_to(value, shape)


#: arcsin(x) = x + x³ P(x²) on |x| ≤ ½: P's coefficients, lowest degree first, of the degree-12
#: polynomial interpolating (arcsin(√z)/√z − 1)/z at the Chebyshev nodes of z ∈ [0, ¼], computed
#: at 40 digits (tests/test_special.py recomputes them); its error there is 2e-17.
ARCSIN_COEFFICIENTS = (0.16666666666666669, 0.07499999999998433, 0.04464285714635543, 0.030381944138531247,
                       0.02237217294214989, 0.017352392720869973, 0.013971212973552933, 0.011479177415184906,
                       0.01032281435018578, 0.005457506718640358, 0.01740087944269402, -0.014851887071247204,
                       0.028757851367421566)
#: π/2 as a double and the remainder (for the reflection on |x| > ½).
_HALF_PI, _HALF_PI_REST = 1.5707963267948966, 6.123233995736766e-17


def safe_arcsin(z):
    """arcsin with its argument clipped to [-1, 1]: round-off at the boundary gives ±π/2, not NaN.

    Within 2 ulp of the correctly rounded value (tests/test_special.py): a polynomial in x² on
    |x| ≤ ½ and the reflection arcsin x = π/2 − 2 arcsin √((1 − x)/2) above, all elementwise
    arithmetic and one square root, which XLA vectorises (its own arcsin costs 9× as much on a
    CPU, and the sign quadruple of ReLU's kernels takes 192 per block)."""
    x = jnp.clip(z, -1.0, 1.0)
    reflected = jnp.abs(x) > 0.5
    square = jnp.where(reflected, (1 - jnp.abs(x)) / 2, x * x)  # exact: Sterbenz for |x| ≥ ½
    root = jnp.sqrt(jnp.where(reflected, square, 1.0))  # never √0 off its branch: no NaN in derivatives
    series = ARCSIN_COEFFICIENTS[-1]
    for coefficient in ARCSIN_COEFFICIENTS[-2::-1]:
        series = series * square + coefficient
    near = x + x * square * series  # odd in x, so its derivative at 0 is 1 (|x| would give 0)
    far = _HALF_PI - (2 * (root + root * square * series) - _HALF_PI_REST)
    return jnp.where(reflected, jnp.where(x < 0, -far, far), near)


def same_unit(c_aa, c_bb, c_ab):
    """Whether two slots of a block hold one unit: equal variances and covariance (exactly)."""
    return (c_aa == c_bb) & (c_ab == c_aa)


def zero_density(c):
    """1/√(2π c), the density of N(0, c) at 0; 0 where c <= 0 or is not finite (a conditionally
    constant variable, whose covariances with everything, the factors this multiplies, vanish)."""
    positive = (c > 0) & jnp.isfinite(c)
    return jnp.where(positive, 1.0 / jnp.sqrt(2 * jnp.pi * jnp.where(positive, c, 1.0)), 0.0)


def sign_pair(c_ab, c_aa, c_bb):
    """<sign(u_a) sign(u_b)> = (2/π) arcsin(c_ab/√(c_aa c_bb)); 0 where a variance is <= 0 or
    an entry is not finite (a conditional covariance given a singular block: the closed forms
    multiply it by a density that vanishes there)."""
    product = c_aa * c_bb
    valid = (product > 0) & jnp.isfinite(product) & jnp.isfinite(c_ab)
    ratio = jnp.where(valid, c_ab, 0.0) / jnp.sqrt(jnp.where(valid, product, 1.0))
    return jnp.where(valid, 2 / jnp.pi * safe_arcsin(ratio), 0.0)


#: |ρ_ij| within this of 1 counts as collinear (the quadrature loses accuracy only there).
COLLINEAR = 1e-14
#: Plackett's pairs (i, j) with the complementary pairs (k, l).
PLACKETT_PAIRS = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)),
                  ((1, 2), (0, 3)), ((1, 3), (0, 2)), ((2, 3), (0, 1)))


def pair(a, b):
    """The key (min, max) of the correlation of slots a ≠ b."""
    return min(a, b), max(a, b)


@functools.cache
def plackett_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1] for `sign_quadruple`'s Plackett integrals."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1) / 2, weights / 2


def sign_quadruple(c00, c01, c02, c03, c11, c12, c13, c22, c23, c33, *, order):
    """<sign(u_0) sign(u_1) sign(u_2) sign(u_3)> on the 4×4 block with entries c_pq, p <= q.

    Plackett's reduction (derive/special.py): (4/π²) Σ_{i<j} ∫_0^{arcsin ρ_ij} arcsin r_kl·ij dθ,
    r_kl·ij the partial correlation of (k, l) given (i, j) on the block with correlations
    (sin θ/ρ_ij) ρ, by an `order`-point Gauss–Legendre rule in s on the half-angle tangent
    τ = tan(θ/2) = tan(arcsin(ρ_ij)/2)(1 - (1 - s)⁴), in which sin θ and cos θ are rational: the
    partial correlation's arcsin is the only transcendental call per node (the generated kernels
    pass derive's PLACKETT_ORDER). Exact on singular blocks up to round-off (e.g. u_0 = u_1 gives
    <sign(u_2) sign(u_3)>). The conditional covariances are formed from t(ρ_ki ± ρ_kj) and
    1 ∓ sin θ = (1 ∓ τ)²/(1 + τ²), never as O(1) - O(1): near-collinear u_i ≈ ±u_j keep the
    quadrature's accuracy (tests/test_special.py bounds it per cluster of units).
    """
    entries = {(0, 0): c00, (0, 1): c01, (0, 2): c02, (0, 3): c03, (1, 1): c11,
               (1, 2): c12, (1, 3): c13, (2, 2): c22, (2, 3): c23, (3, 3): c33}
    scale = [jnp.sqrt(entries[p, p]) for p in range(4)]
    rho = {(p, q): jnp.clip(c / (scale[p] * scale[q]), -1.0, 1.0)[..., None]
           for (p, q), c in entries.items() if p != q}
    nodes, weights = plackett_rule(order)
    s = jnp.asarray(nodes)
    rest = (1 - s) ** 4  # 1 - w for the node's fraction w of the path
    w = 1 - rest
    total = 0.0
    for (i, j), (k, l) in PLACKETT_PAIRS:
        # τ = tan(θ/2) runs from 0 to tan(arcsin(ρ_ij)/2) = ρ_ij/root: sin θ, cos θ are rational in τ
        root = 1 + jnp.sqrt((1 - rho[i, j]) * (1 + rho[i, j]))
        top = rho[i, j] / root
        tau = top * w
        inverse = 1 / (1 + tau * tau)
        # (1 ∓ |sin θ|) = (1 ∓ |τ|)²/(1 + τ²), with 1 - |τ| free of cancellation near |ρ_ij| = 1
        near = (root - jnp.abs(rho[i, j])) / root + jnp.abs(top) * rest
        small, large = near * near * inverse, (2 - near) ** 2 * inverse
        minus, plus = jnp.where(tau >= 0, small, large), jnp.where(tau >= 0, large, small)
        t = 2 * w * inverse / root  # sin θ/ρ_ij
        # conditional covariance of (k, l) given (i, j), times cos²θ = (1 - sin θ)(1 + sin θ), in
        # the sums and differences of the correlations with u_i and u_j: no O(1) terms cancel
        # when u_i ≈ ±u_j
        ak, dk = t * (rho[pair(k, i)] + rho[pair(k, j)]), t * (rho[pair(k, i)] - rho[pair(k, j)])
        al, dl = t * (rho[pair(l, i)] + rho[pair(l, j)]), t * (rho[pair(l, i)] - rho[pair(l, j)])
        s_kk = minus * (plus - ak * ak / 2) - plus * dk * dk / 2
        s_ll = minus * (plus - al * al / 2) - plus * dl * dl / 2
        s_kl = minus * (plus * t * rho[k, l] - ak * al / 2) - plus * dk * dl / 2
        partial = safe_arcsin(s_kl / jnp.sqrt(jnp.maximum(s_kk * s_ll, jnp.finfo(s_kl.dtype).tiny)))
        # dθ = 2 dτ/(1 + τ²), dτ = top · 4(1 - s)³ ds
        total = total + 2 * top[..., 0] * jnp.sum(weights * 4 * (1 - s) ** 3 * inverse * partial, axis=-1)
    value = 4 / jnp.pi**2 * total
    # exactly collinear u_i, u_j (a unit in two slots): sign(u_i) sign(u_j) = ±1 a.s.
    for (i, j), (k, l) in reversed(PLACKETT_PAIRS):
        collinear = jnp.abs(rho[i, j][..., 0]) >= 1 - COLLINEAR
        reduced = jnp.sign(rho[i, j][..., 0]) * sign_pair(entries[k, l], entries[k, k], entries[l, l])
        value = jnp.where(collinear, reduced, value)
    return value
