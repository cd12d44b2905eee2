"""ε_g in the exponential tail: the adaptive controller's error is relative to the
O(1) order parameters, so without care ε_g = O(δ²) loses its digits as the deviation δ from the
fixed point shrinks; `integrate` re-integrates such a tail about its fixed point."""

import numpy as np
import pytest

import nndyn

#: the tail is checked down to this ε_g (float64 resolves ε_g, a sum of O(1) terms, to ~1e-16
#: absolute: at the exact fixed point it evaluates to 5.6e-17)
FLOOR = 1e-10


def plateau_start(K, M, trained=False, seed=1):
    rng = np.random.default_rng(seed)
    W, W_teacher = rng.normal(size=(K, 1000)), rng.normal(size=(M, 1000))
    v = rng.normal(size=K) * 0.5 if trained else None
    return nndyn.OrderParameters.from_weights(0.5 * W, W_teacher, v)


def tail_errors(setting, start, t):
    """Relative ε_g errors of the default integration where the reference's ε_g ≥ FLOOR, and the
    reference's own (rtol 1e-13 against 1e-12) there: how we know the reference has converged.
    The reference does not re-integrate its tail, so it is independent of that mechanism."""
    reference, coarser = (nndyn.integrate(setting, start, t, rtol=rtol, atol=1e-22, max_steps=10**7,
                                          refine_tail=False) for rtol in (1e-13, 1e-12))
    default = nndyn.integrate(setting, start, t)
    eg = np.asarray(reference.eg)
    tail = eg >= FLOOR
    assert eg.min() < 1e-11, "the run must reach the tail"

    def relative(other):
        return np.max(np.abs(np.asarray(other.eg)[tail] / eg[tail] - 1))

    return relative(default), relative(coarser), default


@pytest.mark.parametrize("K, trained, t_max", [pytest.param(2, False, 800, marks=pytest.mark.slow),
                                             pytest.param(3, False, 1100, marks=pytest.mark.slow)])
def test_default_integration_keeps_the_tail_to_1e_3(K, trained, t_max):
    setting = nndyn.Setting(K=K, M=K, lr=0.5, train_second_layer=trained)
    t = np.linspace(0, t_max, int(t_max) + 1)
    error, reference_error, default = tail_errors(setting, plateau_start(K, K, trained), t)
    assert reference_error < 1e-4, f"the reference is not converged: {reference_error:.2g}"
    assert error < 1e-3, f"relative ε_g error {error:.2g} in the tail"
    unrefined = nndyn.integrate(setting, plateau_start(K, K, trained), t, refine_tail=False)
    eg = np.asarray(default.eg)
    assert np.max(np.abs(np.asarray(unrefined.eg)[eg >= FLOOR] / eg[eg >= FLOOR] - 1)) > 1e-2, (
        "the test has power: without the refinement the tail is off")


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_the_tail_decays_at_the_jacobians_rate():
    """Near a stable point the deviation δ = y − y* is a sum of eigenmodes: its projection on
    the slowest one (by the left eigenvectors) decays at that eigenvalue. The two slowest rates
    are 4 % apart here (0.0216, 0.0225), so ε_g ~ δ² itself is a mixture; the projection is not."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    t = np.linspace(0, 900, 901)
    run = nndyn.integrate(setting, plateau_start(2, 2), t)
    point = nndyn.fixed_point(setting, run.state_at(-1))
    upper = np.triu_indices(2)

    def coordinates(Q, R):  # fixed_point's: the upper triangle of Q, then R
        Q, R = np.asarray(Q), np.asarray(R)
        return np.concatenate([Q[..., upper[0], upper[1]], R.reshape(R.shape[:-2] + (-1,))], axis=-1)

    deviation = coordinates(run.Q, run.R) - coordinates(point.state.Q, point.state.R)
    slowest = int(np.argmax(point.eigenvalues.real))
    projection = (deviation @ np.linalg.inv(point.eigenvectors).T)[:, slowest].real
    eg = np.asarray(run.eg)
    window = (eg < 1e-8) & (eg > 1e-12)
    slope = np.polyfit(t[window], np.log(np.abs(projection[window])), 1)[0]
    assert slope == pytest.approx(point.eigenvalues[slowest].real, rel=1e-3)  # measured 2e-5


def test_a_run_continued_to_round_off_keeps_its_tail():
    """Run on until ε_g is round-off (1e-16): the re-integration stops where the deviation from
    the fixed point falls below TAIL_DEVIATION/2 (ε_g ~ 1e-13), beyond which the flows no longer
    resolve it. The tail above is the same as a run that ends before (to 1e-4 relative), and
    the saves well after keep the first solve's values. (Integrating on into round-off, the
    controller used to exhaust its steps, at K = 10 for ten minutes, and then dropped the whole
    refinement.)"""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    short_t, long_t = np.arange(0.0, 801.0), np.arange(0.0, 3001.0)
    short = np.asarray(nndyn.integrate(setting, plateau_start(2, 2), short_t).eg)
    long = np.asarray(nndyn.integrate(setting, plateau_start(2, 2), long_t).eg)
    unrefined = np.asarray(nndyn.integrate(setting, plateau_start(2, 2), long_t, refine_tail=False).eg)
    assert np.abs(long).min() < 1e-14, "the run must reach round-off"
    resolved = short >= FLOOR
    assert np.max(np.abs(long[:801][resolved] / short[resolved] - 1)) < 1e-4  # measured 1e-5; each within 1e-3
    np.testing.assert_array_equal(long[long_t >= 1500], unrefined[long_t >= 1500])
    assert np.max(np.abs(long[:801][resolved] / unrefined[:801][resolved] - 1)) > 1e-2  # the refinement acted


@pytest.mark.slow
def test_a_relu_tail_lost_to_round_off_is_flagged():
    """ReLU's flows have kinks at perfect learning: fixed_point finds no Jacobian there, so no
    tail is re-integrated, and the deviation integration would not help (the controller exhausts
    its steps where the field's round-off, relative ~1e-16/ε_g, exceeds its tolerance). ε_g falls
    to round-off (|ε_g| ~ 1e-11 here) and goes negative: `integrate` says so, and when."""
    rng = np.random.default_rng(0)
    W_teacher = rng.normal(size=(2, 500))
    start = nndyn.OrderParameters.from_weights(1e-3 * rng.normal(size=(2, 500)), W_teacher)
    setting = nndyn.Setting(K=2, M=2, lr=0.5, activation="relu")
    with pytest.warns(RuntimeWarning, match=r"ε_g goes negative from t = \d+ \(down to -\d"):
        eg = np.asarray(nndyn.integrate(setting, start, np.linspace(0, 1000, 101)).eg)
    assert eg.min() < 0 and np.abs(eg[-50:]).max() < 1e-9
