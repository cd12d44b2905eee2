"""The special functions of non-smooth closed forms (derive/special.py, nndyn/core/special.py), and
the verifier's power to reject a wrong closed form."""

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp

from nndyn.core import special
from nndyn.derive.activations import get
from nndyn.derive.integrals import derive_integral
from nndyn.derive.special import PLACKETT_ORDER, QUADRUPLE_ENTRIES, plackett_value
from nndyn.derive.verify import VerificationError, check_monte_carlo, check_price, random_blocks


def entries(C):
    return [C[p, q] for p, q in QUADRUPLE_ENTRIES]


def reference(C, digits=30):
    """⟨s0 s1 s2 s3⟩ by tanh-sinh quadrature of Plackett's integrals at `digits` digits."""
    with mpmath.workdps(digits):
        return float(mpmath.re(plackett_value([mpmath.mpf(float(c)) for c in entries(C)], "tanh-sinh")))


def kernel(C):
    return float(special.sign_quadruple(*map(jnp.asarray, entries(C)), order=PLACKETT_ORDER))


def sample_blocks():
    """Well-conditioned, rank-deficient (rank 2, 3) and singular blocks."""
    rng = np.random.default_rng(11)
    blocks = []
    for rank in (4, 4, 4, 3, 3, 2):
        factor = rng.normal(size=(4, rank))
        blocks.append(factor @ factor.T + (0.02 if rank == 4 else 0.0) * np.eye(4))
    return blocks


@pytest.mark.parametrize("index", range(6))
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_gauss_legendre_kernel_matches_the_high_precision_reference(index):
    """The 32-point rule: error below 1e-11 on well-conditioned and singular blocks."""
    C = sample_blocks()[index]
    assert kernel(C) == pytest.approx(reference(C), abs=1e-11)


#: near-collinear units: row: (source, sign) makes that row of the factor sign × the source row plus
#: δ-noise; with the kernel's bound (measured max over draws at δ = 1e-3 … 1e-6: 6e-10 with pairs,
#: 1.2e-8 with a cluster of three, 4.5e-9 with the half-angle rule on 3 draws; the form that
#: cancelled O(1) terms gave 7e-9 and 5e-5)
CLUSTERS = {"pair": ({1: (0, 1)}, 1e-9), "antipair": ({1: (0, -1)}, 1e-9),
            "two pairs": ({1: (0, 1), 3: (2, 1)}, 1e-9), "three": ({1: (0, 1), 2: (0, 1)}, 5e-8),
            "three and an anti": ({1: (0, 1), 2: (0, 1), 3: (0, -1)}, 5e-8)}


@pytest.mark.parametrize("delta", [1e-3, 1e-5])
@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_quadruple_is_accurate_on_near_collinear_units(cluster, delta):
    """Units a distance δ apart (1 - |ρ| ~ δ², as students near a teacher or near each other):
    the error stays at the quadrature's, free of the O(1) round-off that a cancelling form of the
    conditional covariances multiplies by 1/δ² (the value's own conditioning is ~1e-11)."""
    copies, bound = CLUSTERS[cluster]
    rng = np.random.default_rng(17)
    factor = rng.normal(size=(4, 4))
    for row, (source, sign) in copies.items():
        factor[row] = sign * factor[source] + delta * rng.normal(size=4)
    C = factor @ factor.T
    assert abs(kernel(C) - reference(C)) < bound


def test_quadruple_matches_monte_carlo():
    rng = np.random.default_rng(5)
    factor = rng.normal(size=(4, 4))
    C = factor @ factor.T / 4 + 0.1 * np.eye(4)
    samples = np.sign(rng.standard_normal((2_000_000, 4)) @ np.linalg.cholesky(C).T).prod(axis=1)
    error = samples.std() / np.sqrt(len(samples))
    assert abs(kernel(C) - samples.mean()) < 5 * error


def test_collinear_units_reduce_to_the_sign_pair():
    """u_0 = u_1 (one unit in two slots) gives ⟨s2 s3⟩ = (2/π) arcsin ρ23; u_0 = -u_2 gives -⟨s1 s3⟩."""
    C = np.array([[1.0, 1.0, 0.3, 0.2], [1.0, 1.0, 0.3, 0.2], [0.3, 0.3, 1.0, 0.5], [0.2, 0.2, 0.5, 2.0]])
    assert kernel(C) == pytest.approx(2 / np.pi * np.arcsin(0.5 / np.sqrt(2.0)), abs=1e-15)
    assert reference(C) == pytest.approx(2 / np.pi * np.arcsin(0.5 / np.sqrt(2.0)), abs=1e-14)
    x = np.array([[1.0, 0.3, 0.1], [0.0, 0.9, -0.4], [-1.0, -0.3, -0.1], [0.2, 0.5, 0.7]])
    C = x @ x.T
    pair = 2 / np.pi * np.arcsin(C[1, 3] / np.sqrt(C[1, 1] * C[3, 3]))
    assert kernel(C) == pytest.approx(-pair, abs=1e-15)


def test_sign_pair_and_zero_density_are_guarded():
    assert float(special.sign_pair(0.0, 0.0, 1.0)) == 0.0
    assert float(special.zero_density(-1e-18)) == 0.0
    assert float(special.zero_density(2.0)) == pytest.approx(1 / np.sqrt(4 * np.pi), rel=1e-15)


def test_verifier_rejects_a_closed_form_off_by_little():
    """Price's identity (to 1e-20) catches a perturbation of 1e-6 in one coefficient of the relu
    I2, and Monte Carlo a wrong constant term."""
    derived = derive_integral("I2", (get("relu"), get("relu")))
    c01 = sp.Symbol("c01", real=True)
    blocks = random_blocks(2, 2, seed=1)
    check_price(derived, blocks)
    wrong = derived.__class__(derived.name, derived.size, derived.integrand,
                              derived.expression + sp.Rational(1, 10**6) * c01**2, derived.provenance)
    with pytest.raises(VerificationError, match="Price's identity"):
        check_price(wrong, blocks)
    shifted = derived.__class__(derived.name, derived.size, derived.integrand,
                                derived.expression + sp.Rational(1, 20), derived.provenance)
    with pytest.raises(VerificationError, match="Monte Carlo"):
        check_monte_carlo(shifted, blocks, seed=0)


def _arcsin_coefficients(digits=40):
    """The coefficients of `special.safe_arcsin`'s polynomial, recomputed: P(z) of degree 12
    interpolating (arcsin(√z)/√z − 1)/z at the Chebyshev nodes of z ∈ [0, ¼], at `digits` digits."""
    degree = len(special.ARCSIN_COEFFICIENTS) - 1
    with mpmath.workdps(digits):
        def target(z):
            root = mpmath.sqrt(z)
            return (mpmath.asin(root) / root - 1) / z
        nodes = [mpmath.mpf(1) / 8 * (1 + mpmath.cos(mpmath.pi * (k + mpmath.mpf(1) / 2) / (degree + 1)))
                 for k in range(degree + 1)]
        solution = mpmath.lu_solve(mpmath.matrix([[node**j for j in range(degree + 1)] for node in nodes]),
                                   mpmath.matrix([target(node) for node in nodes]))
        return [float(solution[j]) for j in range(degree + 1)]


def test_arcsin_coefficients_follow_their_recipe():
    assert special.ARCSIN_COEFFICIENTS == pytest.approx(_arcsin_coefficients(), rel=1e-14, abs=0)


def test_arcsin_is_within_two_ulp_of_the_correctly_rounded_value():
    """On a grid over [-1, 1] dense near 0, ½ (where the reflection starts) and 1, against mpmath
    at 30 digits: at most 2 ulp (NumPy's arcsin is within 1); clipped outside [-1, 1]; NaN stays NaN."""
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.uniform(-1, 1, 3000), np.geomspace(1e-300, 1, 300),
                             0.5 + np.geomspace(1e-16, 0.1, 200), 0.5 - np.geomspace(1e-16, 0.1, 200),
                             1 - np.geomspace(1e-16, 0.5, 300), [0.0, 0.5, 1.0]])
    points = np.concatenate([points, -points])
    values = np.asarray(special.safe_arcsin(jnp.asarray(points)))
    with mpmath.workdps(30):
        exact = np.array([float(mpmath.asin(mpmath.mpf(point))) for point in points])
    assert np.max(np.abs(values - exact) / np.spacing(np.abs(exact))) <= 2
    assert values[points == 0.0][0] == 0.0 and values[points == 1.0][0] == np.pi / 2
    edges = np.asarray(special.safe_arcsin(jnp.asarray([1 + 1e-15, -1 - 1e-15, np.nan])))
    assert edges[0] == np.pi / 2 and edges[1] == -np.pi / 2 and np.isnan(edges[2])


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_arcsin_has_the_derivatives_of_arcsin():
    """First and second derivatives (forward and reverse mode) are arcsin's, at 0 (where |x|
    would give 0) and on both branches, and finite: never √0 off its branch (NaN under jnp.where)."""
    import jax

    points = jnp.asarray([0.0, 1e-300, 0.3, -0.3, 0.5, 0.7, -0.7, 0.999])
    slope = jax.vmap(jax.grad(special.safe_arcsin))(points)
    curvature = jax.vmap(jax.hessian(special.safe_arcsin))(points)
    forward = jax.vmap(jax.jacfwd(special.safe_arcsin))(points)
    x = np.asarray(points)
    np.testing.assert_allclose(slope, 1 / np.sqrt(1 - x**2), rtol=1e-13)
    np.testing.assert_allclose(forward, 1 / np.sqrt(1 - x**2), rtol=1e-13)
    np.testing.assert_allclose(curvature, x / (1 - x**2) ** 1.5, rtol=1e-11, atol=1e-15)
