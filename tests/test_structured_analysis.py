"""Structured inputs (docs/structured.md): fixed points, η_max and the plateaus of the flows per
level, each against a derivation or against the integrated dynamics it describes."""

import dataclasses
import math
import warnings

import numpy as np
import pytest

import nndyn
from nndyn.core import spectrum


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_eta_max_of_the_linear_network_is_two_over_the_trace_and_one_level_changes_nothing():
    # Linear network: at perfect learning the level errors obey dD/dt = η diag(ρ)(−2I + η f ρᵀ) D
    # (docs/structured.md), singular first at η = 2/(ρ·f) = 2/(tr Σ/N): a derivation, not the code.
    levels = ((3.0, 0.2), (0.5, 0.5), (0.1, 0.3))
    linear = nndyn.Setting(K=1, M=1, lr=0.5, activation="linear", input_spectrum=levels)
    expected = 2 / float(spectrum.eigenvalues(levels) @ spectrum.fractions(levels))
    assert math.isclose(nndyn.learning_rate_threshold(linear, relative_tolerance=1e-12), expected, rel_tol=1e-10)
    erf = nndyn.Setting(K=2, M=2, lr=0.5)
    isotropic = nndyn.learning_rate_threshold(erf, relative_tolerance=1e-10)
    one_level = nndyn.learning_rate_threshold(erf.replace(input_spectrum=((1.0, 1.0),)), relative_tolerance=1e-10)
    assert math.isclose(one_level, isotropic, rel_tol=1e-9)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_rate_at_perfect_learning_is_the_integrated_decay():
    # The slowest rate of the level flows' Jacobian at perfect learning against the decay of an
    # integrated trajectory's deviation from it (fitted late, where the slowest mode dominates;
    # the next mode's remnant bounds the agreement).
    from nndyn.core.fixed_points import perfect_learning

    setting = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=spectrum.power_law(1.0, 4))
    point = nndyn.fixed_point(setting, perfect_learning(setting))
    assert point.kind == "stable" and point.state.Q_levels.shape == (4, 2, 2)
    rng = np.random.default_rng(8)
    perturbed = dataclasses.replace(point.state, Q_levels=point.state.Q_levels * 0.99,
                                    R_levels=point.state.R_levels * 0.98 + 1e-3 * rng.normal(size=(4, 2, 2)))
    perturbed = dataclasses.replace(perturbed, Q=perturbed.Q_levels.sum(0), R=perturbed.R_levels.sum(0))
    t = np.linspace(0, 8 / point.rate, 41)
    with warnings.catch_warnings():  # ε_g at 1e-12 late on is round-off; the deviation is what is fitted
        warnings.simplefilter("ignore", RuntimeWarning)
        ode = nndyn.integrate(setting, perturbed, t, rtol=1e-11, atol=1e-13, refine_tail=False)
    deviation = np.max(np.abs(np.asarray(ode.R_levels) - np.asarray(point.state.R_levels)), axis=(1, 2, 3))
    late = t > 4 / point.rate
    decay = -np.polyfit(t[late], np.log(deviation[late]), 1)[0]
    assert math.isclose(decay, point.rate, rel_tol=2e-3), (decay, point.rate)  # measured: 2e-4


def test_plateau_threshold_refuses_structured_inputs():
    setting = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=spectrum.power_law(1.0, 4))
    with pytest.raises(ValueError, match="takes isotropic inputs"):
        nndyn.plateau_threshold(setting)
    with pytest.raises(ValueError, match="give neither T nor v_star"):
        nndyn.plateaus(setting, T=np.eye(2))


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_one_level_has_the_isotropic_plateaus():
    # The plateaus found in the flows per level (no symmetric reduction) at one level of
    # eigenvalue 1 against those of the isotropic full flows: the same points and escape rates.
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    isotropic = nndyn.plateaus(setting, full=True)
    one = nndyn.plateaus(setting.replace(input_spectrum=((1.0, 1.0),)))
    for name in ("identical", "distinct"):
        assert one[name].unstable_directions == isotropic[name].unstable_directions
        assert math.isclose(one[name].escape_rate, isotropic[name].escape_rate, rel_tol=1e-9)
        np.testing.assert_allclose(one[name].state.Q, isotropic[name].state.Q, atol=1e-10)
        np.testing.assert_allclose(one[name].state.R, isotropic[name].state.R, atol=1e-10)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_a_power_law_plateau_is_left_at_its_escape_rate():
    # Yoshida & Okada's question: the plateau's escape rate against the spectrum. The distinct
    # plateau of a power law (L = 4) found in the flows per level; started on it plus 1e-7 along
    # its most unstable eigenvector, the integrated flows leave it at λ_u (fitted over three
    # e-folds, 1 %); and it is left faster than the isotropic plateau (measured λ_u: 0.0671
    # against 0.0316 at η = 0.5).
    from nndyn.core.fixed_points import coordinates
    from nndyn.core.plateaus import plateau

    setting = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=spectrum.power_law(1.0, 4))
    point = plateau(setting, "distinct")
    assert point.unstable_directions == 1
    assert point.escape_rate > 2 * plateau(setting.replace(input_spectrum=None), "distinct").escape_rate
    flatten, unflatten = coordinates(2, 2, False, 4)
    direction = np.real(point.eigenvectors[:, 0])
    y = unflatten(flatten(point.state.as_ode_state()) + 1e-7 * direction / np.max(np.abs(direction)),
                  point.state.v)
    start = dataclasses.replace(point.state, Q=y["Q"].sum(0), R=y["R"].sum(0), Q_levels=y["Q"], R_levels=y["R"])
    rate = point.escape_rate
    t = np.linspace(0, 6 / rate, 61)
    ode = nndyn.integrate(setting, start, t, rtol=1e-12, atol=1e-14)
    deviation = np.max(np.abs(np.asarray(ode.R_levels) - np.asarray(point.state.R_levels)), axis=(1, 2, 3))
    window = (t > 1 / rate) & (t < 4 / rate)
    growth = np.polyfit(t[window], np.log(deviation[window]), 1)[0]
    assert math.isclose(growth, rate, rel_tol=0.01), (growth, rate)
