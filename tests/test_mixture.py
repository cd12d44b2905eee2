"""The mixture fallbacks: the erf mixture's evaluation against Monte Carlo (offset included),
the runtime against the derivation's NumPy evaluation, the smoothed-ReLU mixture's sums of ReLU's
closed forms against its integrands, and which activations each applies to."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import covariance_blocks, integrands, monte_carlo, seed_of
from hypothesis import HealthCheck, given, settings
from scipy.special import erf as scipy_erf

from nndyn.core.blocks import entry_positions
from nndyn.core.mixture import erf_mixture, erf_mixtures, relu_mixtures
from nndyn.derive import activations
from nndyn.derive.mixture import ERF, Mixture, family, integral

#: A sigmoid-like ĝ with an offset, so that the terms odd in c0 would show if they were wrong.
MIXTURE = Mixture(0.5, ((0.3, 0.7), (0.2, 1.9)))
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
OTHER = Mixture(-0.25, ((0.6, 1.3),))
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


@pytest.mark.parametrize("expression, base", [
    ("tanh(x)", "erf"), ("1/(1 + exp(-x))", "erf"), ("erf(3*x) + 2", "erf"),
    ("log(1 + exp(x))", "relu"), ("log(1 + exp(3*x))/3", "relu"), ("x*(1 + erf(x/sqrt(2)))/2 + exp(-x**2/2)", "relu"),
    ("atan(x)", None), ("Abs(x)", None), ("tanh(x) + x**2/100", None), ("log(1 + exp(x)) + 1", None),
    ("x/(1 + exp(-x))", "relu"), ("log(1 + exp(x)) + x**2/100", None),
])
def test_the_mixture_each_activation_admits(expression, base):
    """An erf mixture for bounded activations odd about their centre, a smoothed-ReLU mixture for
    those that vanish at −∞ and rise linearly (softplus, with a temperature, Ψ itself up to its
    Gaussian's weight, SiLU); neither for an offset at −∞, a quadratic rise or the rest."""
    assert family(activations.from_expression("g", expression)) == base


#: A smoothed-ReLU mixture ĝ = Σ_j a_j Ψ(s_j x), Ψ(y) = y Φ(y) + φ(y) (softplus-like: ĝ' → 1).
SMOOTHED = ((0.7, 0.4), (0.5, 0.8), (0.3, 1.3))


def _psi(y):
    return y * (1 + scipy_erf(y / np.sqrt(2))) / 2 + np.exp(-(y**2) / 2) / np.sqrt(2 * np.pi)


def _smoothed(x):
    return sum(a * _psi(s * x) for a, s in SMOOTHED)


def _smoothed_prime(x):
    return sum(a * s * (1 + scipy_erf(s * x / np.sqrt(2))) / 2 for a, s in SMOOTHED)


@functools.cache
def _smoothed_runtime(name: str, slots: tuple):
    """The runtime's sum of ReLU's closed forms over `slots`' smoothed-ReLU mixtures, jitted (one
    program per slot pattern: op by op, ReLU's I4 takes seconds to dispatch the first time)."""
    from nndyn.generated import relu  # pyright: ignore[reportMissingImports]

    return jax.jit(lambda *entries: relu_mixtures(name, slots, *entries, base=relu.INTEGRALS[name]))


def _ball(step: float, radius: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The trapezoidal rule's nodes z (P, r) with |z| <= radius and weights ∝ the standard normal
    density, summing to 1."""
    axis = step * np.arange(-np.floor(radius / step), np.floor(radius / step) + 1)
    z = np.stack(np.meshgrid(*[axis] * r, indexing="ij"), -1).reshape(-1, r)
    z = z[np.sum(z**2, axis=1) <= radius**2]
    w = np.exp(-0.5 * np.sum(z**2, axis=1))
    return z, w / w.sum()


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=covariance_blocks(4, largest=1.5))
def test_smoothed_relu_mixtures_are_relus_closed_forms_on_the_blocks_plus_the_identity(name, data):
    """Ψ(s u) = E_z ReLU(s u + z) and Φ(s u) = E_z H(s u + z): ReLU's closed forms summed over
    the terms on S C S + I (the runtime) equal ĝ's integrals by the trapezoidal rule (step 0.1,
    0.2, 0.4 in 2, 3, 4 dimensions) on ĝ's own (smooth) integrand over |z| <= 7.5, to 1e-8
    relative, on Hypothesis blocks with variances up to the verified 1.5 (the derivation's rule,
    cut at 6.5, leaves ~1e-7 of a linearly growing integrand's tail on nearly collinear blocks);
    and with a ReLU teacher in the last slot (ReLU's closed forms again, the teacher's slot
    unscaled and without the identity), against Monte Carlo (10⁶ samples, 5 SE)."""

    r = SIZES[name]
    C = data[:r, :r]
    entries = [jnp.asarray(C[p, q]) for p, q in entry_positions(r)]
    factors = {"I2": "gg", "J2": "pp", "I3": "pug", "I4": "ppgg"}[name]
    slots = tuple(None if factor == "u" else (0.0, SMOOTHED) for factor in factors)
    value = float(_smoothed_runtime(name, slots)(*entries))
    values, vectors = np.linalg.eigh(C)
    z, w = _ball({2: 0.1, 3: 0.2, 4: 0.4}[r], 7.5, r)
    u = z @ (vectors * np.sqrt(np.clip(values, 0.0, None))).T
    pieces = {"g": _smoothed, "p": _smoothed_prime}
    integrand = np.prod([u[:, p] if factor == "u" else pieces[factor](u[:, p]) for p, factor in enumerate(factors)],
                        axis=0)
    assert value == pytest.approx(float(np.sum(w * integrand)), rel=1e-8, abs=1e-12)
    if name == "J2":
        return  # no teacher slot
    with_teacher = (*slots[:-1], None)  # the last slot a ReLU teacher's unit
    value = float(_smoothed_runtime(name, with_teacher)(*entries))
    last = {"g": lambda x: np.maximum(x, 0.0), "p": lambda x: np.heaviside(x, 0.5)}[factors[-1]]

    def exact(v):
        parts = [v[..., p] if factor == "u" else pieces[factor](v[..., p]) for p, factor in enumerate(factors[:-1])]
        return np.prod(parts, axis=0) * last(v[..., -1])

    mean, error = monte_carlo(exact, C, 1_000_000, seed_of(C))
    assert abs(value - mean) <= 5 * error, (name, value, mean, error)


def test_a_smoothed_relu_mixture_has_no_offset():
    from nndyn.generated import relu  # pyright: ignore[reportMissingImports]

    with pytest.raises(ValueError, match="offset"):
        relu_mixtures("I2", ((0.5, SMOOTHED), None), 1.0, 0.2, 1.0, base=relu.INTEGRALS["I2"])


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
    """The built-in module, and the exact side's slots, an exact built-in (ReLU, linear,
    quadratic) with an odd erf mixture takes its terms from; none for a mixture with an offset (a
    sigmoid's), an erf partner (its closed forms are exact already) or two fitted mixtures (the
    mixtures of both). A smoothed-ReLU mixture takes ReLU's closed forms with any exact built-in,
    erf included, and none with another fitted mixture."""
    from nndyn.derive.lower import exact_base

    relu, erf, linear = (activations.get(name) for name in ("relu", "erf", "linear"))
    tanh, sigmoid = activations.from_expression("tanh", "tanh(x)"), activations.from_expression("s", "1/(1 + exp(-x))")
    softplus = activations.from_expression("softplus", "log(1 + exp(x))")
    odd, offset = Mixture(0.0, ((0.5, 1.0),)), Mixture(0.5, ((0.5, 1.0),))
    smoothed = Mixture(0.0, ((1.0, 1.0),), "relu")
    assert exact_base(relu, tanh, (None, odd)) == ("relu__erf", "s")
    assert exact_base(tanh, relu, (odd, None)) == ("erf__relu", "t")
    assert exact_base(linear, tanh, (None, odd)) == ("linear__erf", "s")
    assert exact_base(relu, sigmoid, (None, offset)) is None
    assert exact_base(relu, erf, (None, ERF)) is None
    assert exact_base(tanh, tanh, (odd, odd)) is None
    # a smoothed-ReLU mixture (softplus) takes ReLU's closed forms, with the exact one's where apart
    assert exact_base(softplus, relu, (smoothed, None)) == ("relu", "t")
    assert exact_base(relu, softplus, (None, smoothed)) == ("relu", "s")
    assert exact_base(softplus, erf, (smoothed, ERF)) == ("relu__erf", "t")
    assert exact_base(erf, softplus, (ERF, smoothed)) == ("erf__relu", "s")
    assert exact_base(linear, softplus, (None, smoothed)) == ("linear__relu", "s")
    assert exact_base(softplus, tanh, (smoothed, odd)) is None
