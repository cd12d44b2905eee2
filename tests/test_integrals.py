"""The generated erf block integrals against Monte Carlo, quadrature and known closed forms."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import INTEGRANDS, INTEGRANDS_OF, covariance_blocks, gauss_hermite, monte_carlo, seed_of
from hypothesis import HealthCheck, given, settings

from nndyn.core.kernels import load

erf = load("erf")

SIZES = {"I2": 2, "J2": 2, "I3": 3, "I4": 4}
MC_SAMPLES = 1_000_000
STANDARD_ERRORS = 5
#: ReLU's I4 holds the sign quadruple, a 32-point rule whose documented error (derive/special.py,
#: PLACKETT_ORDER) is ~1e-16 on well-conditioned blocks but up to 5e-8 where units are near
#: collinear (|ρ| within 1e-6 of 1; two near-collinear pairs, drawn by Hypothesis: 4.8e-9).
NEAR_COLLINEAR, QUADRUPLE_ERROR = 1e-6, 5e-8


def rule_error(activation: str, name: str, C: np.ndarray) -> float:
    """The closed form's own documented error on `C`, beyond round-off."""
    if (activation, name) != ("relu", "I4"):
        return 0.0
    scale = np.sqrt(np.diag(C))
    rho = np.abs(C / np.outer(scale, scale))[~np.eye(len(C), dtype=bool)]
    return QUADRUPLE_ERROR if np.any(rho > 1 - NEAR_COLLINEAR) else 0.0


@pytest.mark.parametrize("activation", sorted(INTEGRANDS_OF))
@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_integral_agrees_with_monte_carlo(activation, name):
    module = load(activation)

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(covariance_blocks(SIZES[name]))
    def check(C):
        mean, error = monte_carlo(INTEGRANDS_OF[activation][name], C, MC_SAMPLES, seed_of(C))
        value = float(module.integral(name, jnp.asarray(C)))
        assert abs(value - mean) <= STANDARD_ERRORS * error + 1e-12 + rule_error(activation, name, C), (
            f"{activation} {name}{C.tolist()}: closed form {value}, Monte Carlo {mean} ± {error}"
        )

    check()


def wick(C, pairs_of):
    """Σ over perfect matchings of the indices `pairs_of` of Π C[a, b] (Isserlis' theorem)."""
    if not pairs_of:
        return 1.0
    first, rest = pairs_of[0], pairs_of[1:]
    return sum(C[first, partner] * wick(C, rest[:j] + rest[j + 1:]) for j, partner in enumerate(rest))


@pytest.mark.parametrize("activation, moments", [
    # each integral as (constant, the Gaussian variables whose product is averaged)
    ("linear", {"I2": (1, [0, 1]), "J2": (1, []), "I3": (1, [1, 2]), "I4": (1, [2, 3])}),
    ("quadratic", {"I2": (1, [0, 0, 1, 1]), "J2": (4, [0, 1]), "I3": (2, [0, 1, 2, 2]),
                   "I4": (4, [0, 1, 2, 2, 3, 3])}),
])
def test_polynomial_activations_equal_wick_values(activation, moments):
    module = load(activation)
    rng = np.random.default_rng(3)
    for name, (constant, variables) in moments.items():
        for _ in range(5):
            factor = rng.normal(size=(SIZES[name], SIZES[name]))
            C = factor @ factor.T
            expected = constant * wick(C, variables)
            assert float(module.integral(name, jnp.asarray(C))) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_known_values_from_the_issue():
    C = jnp.array([[1.0, 0.5], [0.5, 1.0]])
    assert float(erf.integral("I2", C)) == pytest.approx(2 / np.pi * np.arcsin(0.25), rel=1e-14)
    assert float(erf.integral("I2", C)) == pytest.approx(0.1608612465, abs=1e-10)
    assert float(erf.integral("J2", C)) == pytest.approx(0.3287490368, abs=1e-10)


REFERENCE_BLOCKS = {
    3: [np.array([[1.0, 0.3, -0.2], [0.3, 0.8, 0.4], [-0.2, 0.4, 1.5]]),
        np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1], [0.1, 0.1, 2.0]])],
    4: [np.array([[1.0, 0.3, -0.2, 0.1], [0.3, 0.8, 0.4, 0.0], [-0.2, 0.4, 1.5, 0.6], [0.1, 0.0, 0.6, 0.9]]),
        np.array([[0.7, 0.7, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.2, 0.2, 1.1, 1.1], [0.2, 0.2, 1.1, 1.1]])],
}


@pytest.mark.parametrize("name", ["I3", "I4"])
def test_exact_values_by_gauss_hermite_quadrature(name):
    """Gauss–Hermite (48 points per dimension for I3, 40 for I4) is exact to ~1e-12 here;
    the second block of each size has repeated indices (I3(a, a, c), I4(a, a, c, c))."""
    for C in REFERENCE_BLOCKS[SIZES[name]]:
        reference = gauss_hermite(INTEGRANDS[name], C, order=48 if name == "I3" else 40)
        assert float(erf.integral(name, jnp.asarray(C))) == pytest.approx(reference, abs=1e-11)


def saad_solla_I3(C):
    """Saad & Solla (1995), eq. for I3 with their Λ3, typed from the paper."""
    lam3 = (1 + C[0, 0]) * (1 + C[2, 2]) - C[0, 2] ** 2
    return 2 / np.pi / np.sqrt(lam3) * (C[1, 2] * (1 + C[0, 0]) - C[0, 1] * C[0, 2]) / (1 + C[0, 0])


def saad_solla_I4(C):
    """Saad & Solla (1995), eq. for I4 with their Λ4, Λ0, Λ1, Λ2, typed from the paper."""
    def c(a, b):  # the paper's 1-based indices
        return C[a - 1, b - 1]

    lam4 = (1 + c(1, 1)) * (1 + c(2, 2)) - c(1, 2) ** 2
    lam0 = (lam4 * c(3, 4) - c(2, 3) * c(2, 4) * (1 + c(1, 1)) - c(1, 3) * c(1, 4) * (1 + c(2, 2))
            + c(1, 2) * c(1, 3) * c(2, 4) + c(1, 2) * c(1, 4) * c(2, 3))
    lam1 = (
        lam4 * (1 + c(3, 3))
        - c(2, 3) ** 2 * (1 + c(1, 1))
        - c(1, 3) ** 2 * (1 + c(2, 2))
        + 2 * c(1, 2) * c(1, 3) * c(2, 3)
    )
    lam2 = (
        lam4 * (1 + c(4, 4))
        - c(2, 4) ** 2 * (1 + c(1, 1))
        - c(1, 4) ** 2 * (1 + c(2, 2))
        + 2 * c(1, 2) * c(1, 4) * c(2, 4)
    )
    return 4 / np.pi**2 / np.sqrt(lam4) * np.arcsin(lam0 / np.sqrt(lam1 * lam2))


@pytest.mark.parametrize("name, literature", [("I3", saad_solla_I3), ("I4", saad_solla_I4)])
def test_derived_forms_equal_the_literature(name, literature):
    rng = np.random.default_rng(7)
    size = SIZES[name]
    for _ in range(20):
        factor = rng.normal(size=(size, size))
        C = factor @ factor.T / size + 0.05 * np.eye(size)
        assert float(erf.integral(name, jnp.asarray(C))) == pytest.approx(literature(C), rel=1e-12, abs=1e-14)


def test_block_functions_broadcast_over_batch_dimensions():
    rng = np.random.default_rng(1)
    factor = rng.normal(size=(5, 3, 4, 4))
    C = jnp.asarray(factor @ np.swapaxes(factor, -1, -2) / 4)
    batched = erf.integral("I4", C)
    assert batched.shape == (5, 3)
    assert float(batched[2, 1]) == pytest.approx(float(erf.integral("I4", C[2, 1])), rel=1e-14)
    assert jax.jit(lambda C: erf.integral("I3", C))(C[..., :3, :3]).shape == (5, 3)


#: Each integral's pattern of units up to the symmetries of its integrand (I2 and J2 in their two
#: units, I4 in its g' pair and in its g pair; I3 has none), under which its value is the same.
SYMMETRIC = {"I2": sorted, "J2": sorted, "I3": list, "I4": lambda p: [*sorted(p[:2]), *sorted(p[2:])]}


@pytest.mark.slow
def test_relu_on_every_index_pattern_of_a_joint_covariance():
    """Repeated units make blocks exactly singular (I4(i, i, n, m), I4(i, k, i, k), …), where the
    ReLU closed forms divide 0 by 0 inside guarded terms: every pattern of 5 units must be finite
    and agree with Monte Carlo on the 5 joint local fields (10⁶ samples, 5 SE, Bonferroni-safe:
    the family of 800 comparisons fails by chance with probability < 5e-4)."""
    module = load("relu")
    rng = np.random.default_rng(4)
    units = rng.normal(size=(5, 40))
    Omega = units @ units.T / 40
    fields = rng.standard_normal((MC_SAMPLES, 40)) @ units.T / np.sqrt(40)
    integrand = INTEGRANDS_OF["relu"]
    estimates = {}  # Monte Carlo once per pattern up to the integrand's symmetries (the same samples)
    for name, size in SIZES.items():
        patterns = np.array(list(itertools.product(range(5), repeat=size)))
        blocks = Omega[patterns[:, :, None], patterns[:, None, :]]
        values = np.asarray(module.integral(name, jnp.asarray(blocks)))
        assert np.all(np.isfinite(values)), f"{name}: non-finite on {patterns[~np.isfinite(values)][:5]}"
        for pattern, value in zip(patterns, values):
            key = (name, *SYMMETRIC[name](tuple(pattern)))
            if key not in estimates:
                samples = integrand[name](fields[:, pattern])
                estimates[key] = samples.mean(), samples.std() / np.sqrt(MC_SAMPLES)
            mean, error = estimates[key]
            assert abs(value - mean) <= STANDARD_ERRORS * error + 1e-12, (
                f"{name}{tuple(pattern)}: {value} vs {mean} ± {error}"
            )
