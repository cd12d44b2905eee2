"""The erf-mixture fallback: its evaluation against Monte Carlo (offset included), the runtime
against the derivation's NumPy evaluation, and which activations it applies to."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import covariance_blocks, integrands, monte_carlo, seed_of
from hypothesis import HealthCheck, given, settings

from nndyn.core.blocks import entry_positions
from nndyn.core.mixture import erf_mixture, erf_mixtures
from nndyn.derive import activations
from nndyn.derive.mixture import ERF, ErfMixture, applies, integral

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


#: A second mixture with an offset of its own, for integrals whose slots hold two activations.
OTHER = ErfMixture(-0.25, ((0.6, 1.3),))
#: Slot patterns of mixed integrals (a pair module's signatures; None is I3's u slot).
MIXED = {"I2": (MIXTURE, OTHER), "J2": (OTHER, MIXTURE), "I3": (MIXTURE, None, OTHER),
         "I4": (MIXTURE, OTHER, MIXTURE, OTHER)}


def mixed_integrand(name, slots):
    """The integrand of `name` with slot p's factor of slots[p]'s ĝ (g or g' as DEFINITIONS say)."""
    factors = {"I2": "gg", "J2": "dd", "I3": "dug", "I4": "ddgg"}[name]

    def integrand(u):
        value = 1.0
        for p, (factor, slot) in enumerate(zip(factors, slots)):
            value = value * (u[..., p] if factor == "u" else slot(u[..., p])[0 if factor == "g" else 1])
        return value
    return integrand


def as_runtime(slots):
    return tuple(None if slot is None else (slot.offset, slot.terms) for slot in slots)


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_mixed_slot_integrals_agree_with_monte_carlo(name):
    """Each slot its own mixture (a student's ĝ beside a teacher's, offsets apart), Hypothesis
    blocks, 4·10⁵ samples, 5 SE: the runtime (nndyn.core.mixture.erf_mixtures) and the
    derivation's NumPy evaluation (derive.mixture.integral) alike."""
    slots = MIXED[name]

    @settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(covariance_blocks(SIZES[name], largest=3.0))
    def check(C):
        mean, error = monte_carlo(mixed_integrand(name, slots), C, 400_000, seed_of(C))
        entries = [jnp.asarray(C[p, q]) for p, q in entry_positions(len(C))]
        for value in (float(erf_mixtures(name, as_runtime(slots), *entries)), integral(name, slots, C)):
            assert abs(value - mean) <= 5 * error + 1e-12, f"{name}{C.tolist()}: {value} vs {mean} ± {error}"

    check()


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_erf_is_its_own_exact_mixture():
    """ERF in every slot gives the built-in erf's closed forms (the teacher of a pair module)."""
    from nndyn.generated import erf  # pyright: ignore[reportMissingImports]

    rng = np.random.default_rng(2)
    for name, r in SIZES.items():
        factor = rng.normal(size=(r, r))
        entries = [jnp.asarray(value) for value in (factor @ factor.T / r)[np.triu_indices(r)]]
        slots = as_runtime(tuple(None if name == "I3" and p == 1 else ERF for p in range(r)))
        assert float(erf_mixtures(name, slots, *entries)) == pytest.approx(float(erf.INTEGRALS[name](*entries)),
                                                                          rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("expression, admitted", [
    ("tanh(x)", True), ("1/(1 + exp(-x))", True), ("erf(3*x) + 2", True),
    ("log(1 + exp(x))", False), ("atan(x)", False), ("Abs(x)", False), ("tanh(x) + x**2/100", False),
])
def test_applies_to_bounded_activations_odd_about_their_centre(expression, admitted):
    assert applies(activations.from_expression("g", expression)) is admitted


def test_an_exact_activations_closed_forms_sum_over_the_mixtures_terms():
    """With `base` (a pair module's closed form of ReLU with erf), the erf slots take the mixture's
    terms and the ReLU slots are left as they are: for the teacher's ĝ* = Σ_j a_j erf(s_j x/√2),
    ⟨H(u0) u1 ĝ*(u2)⟩ = Σ_j a_j I3(C with slot 2 scaled by s_j), written out here by hand."""
    from nndyn.generated import relu__erf  # pyright: ignore[reportMissingImports]

    terms = ((0.3, 0.7), (0.2, 1.9))
    base = relu__erf.INTEGRALS[("I3", "s-t")]
    C = np.array([[0.9, 0.3, -0.2], [0.3, 1.1, 0.4], [-0.2, 0.4, 0.7]])
    expected = 0.0
    for a, s in terms:
        S = np.diag([1.0, 1.0, s])
        expected += a * float(base(*(jnp.asarray(value) for value in (S @ C @ S)[np.triu_indices(3)])))
    value = float(erf_mixtures("I3", (None, None, (0.0, terms)), *(jnp.asarray(v) for v in C[np.triu_indices(3)]),
                               base=base))
    assert value == pytest.approx(expected, rel=1e-14)


def test_an_offset_has_no_terms_in_an_exact_activations_closed_forms():
    """A mixture with an offset (a sigmoid's) beside ReLU would need ReLU's integrals with one slot
    fewer: refused, not dropped."""
    from nndyn.generated import relu__erf  # pyright: ignore[reportMissingImports]

    with pytest.raises(ValueError, match="offset"):
        erf_mixtures("I2", (None, (0.5, ((0.5, 1.0),))), 1.0, 0.2, 1.0, base=relu__erf.INTEGRALS[("I2", "st")])


def test_which_pairs_take_an_exact_activations_closed_forms():
    """The built-in pair module an exact built-in (ReLU, linear, quadratic) with an odd mixture
    takes its terms from; none for a mixture with an offset (a sigmoid's), an erf partner (its
    closed forms are exact already) or two fitted mixtures (the mixtures of both)."""
    from nndyn.derive.lower import exact_base

    relu, erf, linear = (activations.get(name) for name in ("relu", "erf", "linear"))
    tanh, sigmoid = activations.from_expression("tanh", "tanh(x)"), activations.from_expression("s", "1/(1 + exp(-x))")
    odd, offset = ErfMixture(0.0, ((0.5, 1.0),)), ErfMixture(0.5, ((0.5, 1.0),))
    assert exact_base(relu, tanh, (None, odd)) == "relu__erf"
    assert exact_base(tanh, relu, (odd, None)) == "erf__relu"
    assert exact_base(linear, tanh, (None, odd)) == "linear__erf"
    assert exact_base(relu, sigmoid, (None, offset)) is None
    assert exact_base(relu, erf, (None, ERF)) is None
    assert exact_base(tanh, tanh, (odd, odd)) is None
