"""Fixed points and their stability from the generated vector field."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndyn
from nndyn.core.fixed_points import (
    FixedPointError,
    _field,
    largest_real_part,
    learning_rate_threshold,
    perfect_learning,
)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_eta_max_of_the_erf_perceptron_is_pi_sqrt_five_thirds():
    """K = M = 1, soft committee machine, T = 1: perfect learning is stable for η < π√(5/3)."""
    eta_max = learning_rate_threshold(nndyn.Setting(K=1, M=1, lr=1.0))
    assert eta_max == pytest.approx(np.pi * np.sqrt(5 / 3), rel=1e-9)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_symmetric_plateau_is_saad_and_sollas_saddle(K):
    """η → 0 (a huge batch removes the η² term): Q_ii = Q_ik = 1/(2K-1), R_in = 1/√(K(2K-1)) is a
    fixed point with ε_g = (K/π)(π/6 − K arcsin(1/(2K))), a saddle whose unstable eigenvalue has
    multiplicity (K - 1)² (the symmetry of permuting students and teachers). Its students are identical
    (Ω is singular there), and the Jacobian has zero modes, so Newton's method converges to it
    only linearly along them: from a nearby start to 1e-6."""
    setting = nndyn.Setting(K=K, M=K, lr=0.5, batch=10**12)
    Q, R = np.full((K, K), 1 / (2 * K - 1)), np.full((K, K), 1 / np.sqrt(K * (2 * K - 1)))
    exact = nndyn.OrderParameters(jnp.asarray(Q), jnp.asarray(R), jnp.eye(K), jnp.ones(K), jnp.ones(K))
    point = nndyn.fixed_point(setting, exact)
    assert point.iterations == 0 and point.residual < 1e-14
    assert point.eg == pytest.approx(K / np.pi * (np.pi / 6 - K * np.arcsin(1 / (2 * K))), rel=1e-12)
    # one unstable eigenvalue of multiplicity (K - 1)²: permutations of students and of teachers
    assert point.kind == "saddle" and point.unstable_directions == (K - 1) ** 2
    assert np.ptp(point.eigenvalues.real[:(K - 1) ** 2]) < 1e-9
    nearby = nndyn.OrderParameters(jnp.asarray(Q + 0.01 * np.eye(K)), jnp.asarray(R - 0.005), jnp.eye(K),
                                   jnp.ones(K), jnp.ones(K))
    found = nndyn.fixed_point(setting, nearby, tolerance=1e-15)
    np.testing.assert_allclose(found.state.Q, Q, atol=1e-6)
    np.testing.assert_allclose(found.state.R, R, atol=1e-6)


@pytest.mark.slow
def test_the_specialised_point_is_stable_below_eta_max_and_unstable_above():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    eta_max = learning_rate_threshold(setting, relative_tolerance=1e-10)
    for factor, kind in ((0.9, "stable"), (1.1, "unstable")):
        changed = setting.replace(lr=factor * eta_max, lr_v=factor * eta_max)
        point = nndyn.fixed_point(changed, perfect_learning(changed))
        assert point.residual < 1e-15
        assert point.kind == kind or (kind == "unstable" and point.kind == "saddle"), (factor, point.kind)
    # bisected to 1e-10 relative in η, where max Re λ has a slope of order 1 (0.051 → 0.0068 over
    # 0.05 in η): it is zero there to ~1e-10; 1e-6 leaves room for the eigen-solver's round-off
    assert abs(largest_real_part(setting, eta_max)) < 1e-6


def test_eigenvalues_agree_with_a_finite_difference_jacobian():
    setting = nndyn.Setting(K=2, M=2, lr=0.7, train_second_layer=True)
    point = nndyn.fixed_point(setting, perfect_learning(setting))
    field, _, flatten, _, _, _ = _field(setting)
    args = setting.ode_args(point.state.T, point.state.v_star)
    x = flatten(point.state.as_ode_state())
    h = 1e-6
    columns = [(field(x + h * e, point.state.v, args) - field(x - h * e, point.state.v, args)) / (2 * h)
               for e in np.eye(x.size)]
    numeric = np.sort_complex(np.linalg.eigvals(np.stack(columns, axis=1)))
    # central differences at h = 1e-6: truncation ~h² ≈ 1e-12, round-off ~1e-16/h ≈ 1e-10
    np.testing.assert_allclose(numeric, np.sort_complex(point.eigenvalues), atol=1e-7)


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_a_start_near_a_stable_point_decays_at_the_predicted_rate():
    """Along the slowest eigenvector, the distance to the fixed point falls like exp(−rate t)."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    point = nndyn.fixed_point(setting, perfect_learning(setting))
    assert point.kind == "stable" and abs(point.eigenvalues[0].imag) < 1e-12
    _, _, flatten, unflatten, _, _ = _field(setting)
    x = np.asarray(flatten(point.state.as_ode_state())) + 1e-5 * np.real(point.eigenvectors[:, 0])
    y = unflatten(jnp.asarray(x), point.state.v)
    start = nndyn.OrderParameters(y["Q"], y["R"], point.state.T, point.state.v, point.state.v_star)
    times = np.array([0.0, 5.0, 10.0])
    trajectory = nndyn.integrate(setting, start, times, rtol=1e-12, atol=1e-16)
    distance = [float(jnp.max(jnp.abs(trajectory.Q[i] - point.state.Q))) for i in range(3)]
    measured = np.log(distance[1] / distance[2]) / 5.0
    assert measured == pytest.approx(point.rate, rel=1e-3)


def test_no_convergence_and_an_unrealizable_eta_max_are_one_line_each():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    far = nndyn.OrderParameters(jnp.eye(2) * 3.0, jnp.array([[0.1, -0.2], [0.3, 0.05]]), jnp.eye(2), jnp.ones(2),
                                jnp.ones(2))
    with pytest.raises(FixedPointError, match=r"did not converge in 1 steps: the largest \|flow\| is"):
        nndyn.fixed_point(setting, far, max_iterations=1)
    with pytest.raises(ValueError, match="realizable setting with K = M; this one has K=2, M=1"):
        learning_rate_threshold(nndyn.Setting(K=2, M=1, lr=0.5))
    with pytest.raises(ValueError, match="for σ = 0"):
        learning_rate_threshold(nndyn.Setting(K=1, M=1, lr=0.5, sigma=0.1))
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), far)
    with pytest.raises(ValueError, match=r"starts from one state.*got Q of shape \(2, 2, 2\)"):
        nndyn.fixed_point(setting, batch)


@pytest.mark.slow
def test_where_relu_flows_have_no_jacobian_fixed_point_says_so():
    """ReLU's flows have kinks where a student unit meets a teacher: at perfect learning jacfwd
    returns a finite matrix that is no derivative (its eigenvalue +0.14 made the point a
    "saddle", though SGD converges to it) and beside it a non-finite one. Each is one line
    naming the cause, and η_max with it; erf's perfect learning, smooth, stays stable."""
    relu = nndyn.Setting(K=2, M=2, lr=0.5, activation="relu")
    with pytest.raises(FixedPointError, match="student unit 0 and teacher unit 0 do at this fixed point"):
        nndyn.fixed_point(relu, perfect_learning(relu))
    W_star = np.random.default_rng(0).normal(size=(2, 50))
    near = nndyn.OrderParameters.from_weights(W_star + 1e-3 * np.random.default_rng(1).normal(size=(2, 50)), W_star)
    with pytest.raises(FixedPointError, match="not differentiable"):
        nndyn.fixed_point(relu, near)
    with pytest.raises(FixedPointError, match="not differentiable where two units coincide"):
        learning_rate_threshold(relu)
    erf = nndyn.Setting(K=2, M=2, lr=0.5)
    assert erf.kernels.smooth and not relu.kernels.smooth
    assert nndyn.fixed_point(erf, perfect_learning(erf)).kind == "stable"


def test_jit_cache_is_shared_across_learning_rates():
    assert _field(nndyn.Setting(K=1, M=1, lr=0.5)) is _field(nndyn.Setting(K=1, M=1, lr=2.0, sigma=0.3))
    assert jax.config.jax_enable_x64


@pytest.mark.slow
def test_the_optimal_learning_rate_maximises_the_asymptotic_rate():
    from nndyn.core.fixed_points import optimal_learning_rate

    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    eta_opt, rate = optimal_learning_rate(setting, of="state")
    assert 0 < eta_opt < learning_rate_threshold(setting, relative_tolerance=1e-8)
    assert rate == pytest.approx(-largest_real_part(setting, eta_opt), rel=1e-12)
    for other in (0.9 * eta_opt, 1.05 * eta_opt):
        assert -largest_real_part(setting, other) < rate


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_the_plateau_lengthens_by_ln_ten_over_the_unstable_eigenvalue_per_decade_of_asymmetry():
    """Started on the symmetric plateau of K = M = 2 displaced by δ₀ along its unstable
    eigenvector, the ODE escapes (ε_g below half the plateau's) later by ln(10)/λ_u for each
    tenfold smaller δ₀: the plateau length is ln(1/δ₀)/λ_u plus a constant."""
    from nndyn.sweeps.observables import plateau

    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    Q, R = np.full((2, 2), 1 / 3), np.full((2, 2), 1 / np.sqrt(6))
    saddle = nndyn.fixed_point(setting, nndyn.OrderParameters(jnp.asarray(Q), jnp.asarray(R), jnp.eye(2), jnp.ones(2),
                                                              jnp.ones(2)))
    assert saddle.kind == "saddle"
    # the saddle's students are identical (Ω is singular): displace them as vectors, by ±δ₀ along
    # the difference of the teachers, so that the start is a Gram matrix (positive semi-definite)
    values, vectors = np.linalg.eigh(np.asarray(saddle.state.omega))
    rows = vectors * np.sqrt(np.clip(values, 0, None))  # Ω = rows rowsᵀ: students 0, 1, teachers 2, 3
    difference = (rows[2] - rows[3]) / np.linalg.norm(rows[2] - rows[3])
    times = np.linspace(0, 1500, 3001)
    escapes = []
    for delta in (1e-4, 1e-5, 1e-6):
        moved = rows + delta * np.outer([1, -1, 0, 0], difference)
        Omega = moved @ moved.T
        start = nndyn.OrderParameters(
            jnp.asarray(Omega[:2, :2]), jnp.asarray(Omega[:2, 2:]), jnp.asarray(Omega[2:, 2:]), jnp.ones(2), jnp.ones(2)
        )
        trajectory = nndyn.integrate(setting, start, times, rtol=1e-11, atol=1e-14)
        found = plateau(times, np.asarray(trajectory.eg), setting.lr)
        assert found["escaped"], delta
        escapes.append(found["escape_time"])
    per_decade = np.diff(escapes)
    # each escape time is read off saved times 0.5 apart (0.75 % of ~67): 2 % covers two readings
    np.testing.assert_allclose(per_decade, saddle.escape_time(0.1), rtol=0.02)


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_with_label_noise_the_floor_is_the_fixed_point_the_ode_settles_at():
    """σ > 0: perfect learning is no fixed point; Newton from it finds the stable floor, which
    the integrated ODE reaches, and at small η the floor's ε_g is proportional to η σ²."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5, sigma=0.3)
    floor = nndyn.fixed_point(setting, perfect_learning(setting))
    assert floor.kind == "stable" and floor.eg > 0
    late = nndyn.integrate(setting, perfect_learning(setting), np.array([0.0, 2000.0]), rtol=1e-11, atol=1e-14)
    assert float(late.eg[-1]) == pytest.approx(floor.eg, rel=1e-6)
    small = [
        nndyn.fixed_point(setting.replace(lr=eta, lr_v=eta, sigma=sigma), perfect_learning(setting)).eg
        / (eta * sigma**2)
        for eta, sigma in ((0.01, 0.3), (0.005, 0.3), (0.005, 0.15))
    ]
    np.testing.assert_allclose(small[1:], small[0], rtol=0.01)


@pytest.mark.slow
def test_weight_decay_moves_the_stable_point_and_raises_its_error():
    """With decay λ the perfect-learning point moves inward (Q_ii < 1) to a stable point whose
    ε_g > 0 grows with λ; the ODE settles there (measured: ε_g 1.45e-3, 4.33e-3, 1.15e-2 at
    λ = 0.005, 0.01, 0.02 for K = M = 2, η = 0.5)."""
    from nndyn.core.fixed_points import perfect_learning

    errors = []
    for decay in (0.005, 0.01, 0.02):
        setting = nndyn.Setting(K=2, M=2, lr=0.5, weight_decay=decay)
        point = nndyn.fixed_point(setting, perfect_learning(setting))
        assert point.kind == "stable" and np.all(np.diag(np.asarray(point.state.Q)) < 1)
        late = nndyn.integrate(setting, perfect_learning(setting), np.array([0.0, 2000.0]))
        assert float(late.eg[-1]) == pytest.approx(point.eg, rel=1e-6)
        errors.append(point.eg)
    assert errors[0] < errors[1] < errors[2]


def test_a_zero_of_the_flows_outside_the_cone_of_states_is_refused():
    """At η = 5, K = M = 2, Newton's method from the symmetric plateau's guess reaches a zero of the
    flows whose Ω has a negative eigenvalue (ε_g = −0.0013 there): no network has that state."""
    K = 2
    eye, ones = np.eye(K), np.ones(K)
    start = nndyn.OrderParameters(np.full((K, K), 1 / (2 * K - 1)), np.full((K, K), 1 / np.sqrt(K * (2 * K - 1))),
                                  eye, ones, ones)
    with pytest.raises(FixedPointError, match="no network's state"):
        nndyn.fixed_point(nndyn.Setting(K=K, M=K, lr=5.0), start)
    assert nndyn.fixed_point(nndyn.Setting(K=K, M=K, lr=0.5), start).eg > 0  # where it is a state, it is found


def test_fixed_point_accepts_what_integrate_returns():
    """An integrated Q's antisymmetric round-off (up to ASYMMETRY relative) is removed, not refused;
    and integrate keeps Q symmetric."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    init = nndyn.OrderParameters.from_weights(np.random.default_rng(1).normal(size=(2, 50)),
                                              np.random.default_rng(2).normal(size=(2, 50)))
    run = nndyn.integrate(setting, init, np.linspace(0, 200, 5))
    Q = np.asarray(run.Q)  # as symmetric as the start (to a few ulps): no antisymmetric part accumulates
    assert np.max(np.abs(Q - np.swapaxes(Q, -1, -2))) <= 4 * np.finfo(np.float64).eps * np.max(np.abs(Q))
    end = run.state_at(-1)
    skewed = dataclasses.replace(end, Q=end.Q + 1e-9 * np.array([[0.0, 1.0], [-1.0, 0.0]]))
    assert nndyn.fixed_point(setting, skewed).kind == "stable"


def fitted_eg_rate(setting, K: int, t_max: float) -> float:
    """The decay rate of ε_g fitted (least squares on log ε_g) where 1e-10 < ε_g < 1e-6, from
    students started near perfect learning (a random 5 % perturbation of the teacher's weights)."""
    rng = np.random.default_rng(K)
    W_star = rng.normal(size=(K, 400))
    init = nndyn.OrderParameters.from_weights(W_star + 0.05 * rng.normal(size=(K, 400)), W_star)
    init = dataclasses.replace(init, T=np.eye(K), Q=init.Q - init.T + np.eye(K), R=init.R - init.T + np.eye(K))
    run = nndyn.integrate(setting, init, np.linspace(0, t_max, 401))
    eg, t = np.asarray(run.eg), np.asarray(run.t)
    ended = np.argmax(eg <= 1e-10) if np.any(eg <= 1e-10) else len(eg)  # round-off below, not dynamics
    window = (eg > 1e-10) & (eg < 1e-6) & (np.arange(len(eg)) < ended)
    assert window.sum() > 20, "the fit window holds too few saves"
    return -float(np.polyfit(t[window], np.log(eg[window]), 1)[0])


@pytest.mark.slow
@pytest.mark.parametrize("K, lr", [(2, 1.88), (2, 2.18), (3, 1.28), (4, 0.97)])
def test_the_eg_rate_is_the_fitted_decay_of_integrated_eg(K, lr):
    """ε_g's rate at perfect learning (the slowest mode counted at twice its rate where ε_g does
    not see it at first order) is the decay of ε_g in integrated trajectories, to 2 %, at each
    K's η_opt and at K = 2's old one (2.18, where the slowest mode is visible); the order
    parameters' rate −max Re λ is not, at K = 2 (0.083 against 0.144 at η = 1.88). (Where the
    invisible slow modes are nearly degenerate, e.g. K = 4 at η = 0.5, pairs of them decay at
    sums of their rates and the fitted rate approaches 2 min|Re λ| only slowly: 5 % above it
    at ε_g = 1e-10.)"""
    from nndyn.core.fixed_points import perfect_learning_point

    setting = nndyn.Setting(K=K, M=K, lr=lr)
    point = perfect_learning_point(setting, lr)
    fitted = fitted_eg_rate(setting, K, t_max=25 / point.eg_rate)
    assert fitted == pytest.approx(point.eg_rate, rel=0.02)
    if K == 2 and lr == 1.88:
        assert abs(fitted - point.rate) > 0.5 * point.rate


@pytest.mark.slow
def test_eta_opt_is_the_learning_rate_of_fastest_learning():
    """At K = 2, η_opt of ε_g (1.881) learns faster in integrated trajectories than 8 % either
    side of it and than the order parameters' η_opt (2.180), where ε_g decays at 0.096 only."""
    from nndyn.core.fixed_points import optimal_learning_rate

    setting = nndyn.Setting(K=2, M=2, lr=1.0)
    eta_opt, rate = optimal_learning_rate(setting)
    eta_state, _ = optimal_learning_rate(setting, of="state")
    fitted = {eta: fitted_eg_rate(setting.replace(lr=eta), 2, t_max=25 / 0.09)
              for eta in (0.92 * eta_opt, eta_opt, 1.08 * eta_opt, eta_state)}
    assert fitted[eta_opt] == pytest.approx(rate, rel=0.02)
    assert fitted[eta_opt] > max(value for eta, value in fitted.items() if eta != eta_opt)


def test_a_gradient_that_is_not_finite_is_an_error_not_invisible_modes():
    """A NaN in ∇ε_g would compare false everywhere and make every mode invisible, doubling
    eg_rate without a word (an arcsin whose reverse-mode derivative was NaN at 0 did that)."""
    from nndyn.core.fixed_points import perfect_learning_point

    point = perfect_learning_point(nndyn.Setting(K=2, M=2, lr=1.88), 1.88)
    assert np.any(point.visible)  # the finite gradient sees the point's visible modes
    broken = dataclasses.replace(point, eg_gradient=np.where(np.arange(point.eg_gradient.size) == 0, np.nan,
                                                             point.eg_gradient))
    with pytest.raises(ValueError, match="not finite"):
        _ = broken.eg_rate
