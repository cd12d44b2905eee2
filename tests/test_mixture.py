"""The erf-mixture fallback: its evaluation against Monte Carlo (offset included), the runtime
against the derivation's NumPy evaluation, and which activations it applies to."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import covariance_blocks, integrands, monte_carlo, seed_of
from hypothesis import HealthCheck, given, settings

from nndyn.core.blocks import entry_positions
from nndyn.core.mixture import erf_mixture
from nndyn.derive import activations
from nndyn.derive.mixture import ErfMixture, applies, integral

#: A sigmoid-like ĝ with an offset, so that the terms odd in c0 would show if they were wrong.
MIXTURE = ErfMixture(0.5, ((0.3, 0.7), (0.2, 1.9)))
SIZES = {"I2": 2, "J2": 2, "I3": 3, "I4": 4}


def evaluated(name, C):
    entries = [jnp.asarray(C[p, q]) for p, q in entry_positions(len(C))]
    return float(erf_mixture(name, MIXTURE.offset, MIXTURE.terms, *entries))


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow
def test_mixture_integrals_agree_with_monte_carlo(name):
    """Hypothesis blocks, 4·10⁵ samples of the mixture's own integrand, 5 SE."""
    reference = integrands(lambda u: MIXTURE(u)[0], lambda u: MIXTURE(u)[1])[name]

    @settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(covariance_blocks(SIZES[name], largest=3.0))
    def check(C):
        mean, error = monte_carlo(reference, C, 400_000, seed_of(C))
        value = evaluated(name, C)
        assert abs(value - mean) <= 5 * error + 1e-12, f"{name}{C.tolist()}: {value} vs {mean} ± {error}"

    check()


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_runtime_matches_the_derivations_evaluation(name):
    """nndyn.core.mixture (JAX, what generated modules run; I4 factorised) against
    derive.mixture.integral (NumPy, G's closed form on each rescaled block, what nndyn.derive
    verified), on random blocks and on every index pattern of a joint covariance (the singular
    blocks of repeated units that the flows evaluate)."""
    rng = np.random.default_rng(3)
    r = SIZES[name]
    factor = rng.normal(size=(5, r, r))
    random = factor @ factor.transpose(0, 2, 1) / r
    A = rng.normal(size=(3, 4)) / 2
    Omega = A @ A.T
    index = np.array(list(itertools.product(range(3), repeat=r)))
    blocks = np.concatenate([random, Omega[index[:, :, None], index[:, None, :]]])
    entries = [jnp.asarray(blocks[:, p, q]) for p, q in entry_positions(r)]
    runtime = np.asarray(erf_mixture(name, MIXTURE.offset, MIXTURE.terms, *entries))
    derived = np.array([integral(name, MIXTURE, C) for C in blocks])
    np.testing.assert_allclose(runtime, derived, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("expression, admitted", [
    ("tanh(x)", True), ("1/(1 + exp(-x))", True), ("erf(3*x) + 2", True),
    ("log(1 + exp(x))", False), ("atan(x)", False), ("Abs(x)", False), ("tanh(x) + x**2/100", False),
])
def test_applies_to_bounded_activations_odd_about_their_centre(expression, admitted):
    assert applies(activations.from_expression("g", expression)) is admitted
