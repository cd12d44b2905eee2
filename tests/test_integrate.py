"""The integrator against an independent reference, exact solutions and known fixed points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndyn
from nndyn.core.kernels import load

erf = load("erf")

# Goldt et al.'s C++ integrator (forward Euler), soft committee machine, erf, M = K = 2, η = 0.5,
# σ = 0, T = I, printed to 6 significant digits.
GOLDT_Q0 = [[0.31848084366072715, 1.6527635528529094e-05], [1.6527635528529094e-05, 0.13489335688193516]]
GOLDT_R0 = [[0.00060663577576717989, 0.00072949656098399845], [0.00054362499146542293, 0.00093507242378776823]]
GOLDT_DT_001 = {0.0: 0.447773, 1.99: 0.115707, 9.92: 0.0159324, 49.81: 0.0149172, 99.13: 0.0147675, 197.89: 0.0146543}
GOLDT_DT_0001 = {302.783: 0.0075391, 394.646: 0.000211814}
SIX_DIGITS = 5e-6  # relative half-unit of the 6th significant digit
SCM = nndyn.Setting(K=2, M=2, lr=0.5)


def goldt_init():
    return nndyn.OrderParameters(jnp.array(GOLDT_Q0), jnp.array(GOLDT_R0), jnp.eye(2), jnp.ones(2), jnp.ones(2))


@pytest.mark.parametrize("dt, reference", [(0.01, GOLDT_DT_001), (0.001, GOLDT_DT_0001)])
def test_euler_reproduces_goldt_reference_digit_for_digit(dt, reference):
    times = np.array([0.0, *[t for t in reference if t > 0]])
    trajectory = nndyn.integrate(SCM, goldt_init(), times, method="euler", dt=dt)
    for t, eg in zip(times[1:], trajectory.eg[1:]):
        assert float(eg) == pytest.approx(reference[t], rel=SIX_DIGITS), t
    assert float(trajectory.eg[0]) == pytest.approx(GOLDT_DT_001[0.0], rel=SIX_DIGITS)


def test_adaptive_solution_matches_the_plateau_and_the_dt_to_zero_escape():
    """On the plateau the Euler bias of dt = 0.01 is below 1e-4 relative; in the transient
    (t = 1.99, 9.92) it is O(dt) and the adaptive solution is the dt -> 0 limit, so it is held to
    the dt = 0.001 run there instead (the escape at t ≈ 300–400)."""
    plateau = {t: eg for t, eg in GOLDT_DT_001.items() if t >= 49.81}
    times = np.array([0.0, *plateau, *GOLDT_DT_0001])
    trajectory = nndyn.integrate(SCM, goldt_init(), times, rtol=1e-10, atol=1e-12)
    values = dict(zip(times.tolist(), np.asarray(trajectory.eg).tolist()))
    for t, eg in plateau.items():
        assert values[t] == pytest.approx(eg, rel=1e-4), t
    # Euler at dt = 0.001 is itself O(dt) away from the limit: 1e-3 relative on the escape.
    for t, eg in GOLDT_DT_0001.items():
        assert values[t] == pytest.approx(eg, rel=2e-3), t


@pytest.mark.slow
def test_euler_converges_to_the_adaptive_solution_with_order_one():
    times = np.linspace(0.0, 20.0, 11)
    exact = nndyn.integrate(SCM, goldt_init(), times, rtol=1e-12, atol=1e-14)
    steps = [0.2, 0.1, 0.05, 0.025]
    errors = [
        float(jnp.max(jnp.abs(nndyn.integrate(SCM, goldt_init(), times, method="euler", dt=dt).Q - exact.Q)))
        for dt in steps
    ]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 1.0) < 0.1), orders


@pytest.mark.parametrize("K, expected", [(2, 0.011611), (3, 0.020297)])
def test_saad_solla_symmetric_plateau(K, expected):
    """T = I, K = M, η -> 0 (batch -> ∞ removes the η² term): the symmetric fixed point
    Q_ii = Q_ik = 1/(2K-1), R_in = 1/√(K(2K-1)) has ε_g = (K/π)(π/6 − K arcsin(1/(2K)))."""
    formula = K / np.pi * (np.pi / 6 - K * np.arcsin(1 / (2 * K)))
    assert formula == pytest.approx(expected, abs=5e-7)
    y = {"Q": jnp.full((K, K), 1 / (2 * K - 1)), "R": jnp.full((K, K), 1 / np.sqrt(K * (2 * K - 1))),
         "v": jnp.ones(K)}
    args = {**nndyn.Setting(K=K, M=K, lr=1.0).ode_args(jnp.eye(K), jnp.ones(K)), "batch": jnp.inf}
    assert float(jax.jit(erf.eg)(y, args)) == pytest.approx(formula, rel=1e-13)
    for name, flow in jax.jit(erf.rhs)(0.0, y, args).items():
        assert np.max(np.abs(flow)) < 1e-14, name


def test_unrealizable_best_error():
    """K = 1 < M = 2, T = I, η -> 0: ε_g -> [arcsin(2/3) + π/3 − 4 arcsin(1/√6)]/π."""
    best = (np.arcsin(2 / 3) + np.pi / 3 - 4 * np.arcsin(1 / np.sqrt(6))) / np.pi
    assert best == pytest.approx(0.0301719, abs=5e-8)
    start = nndyn.OrderParameters(jnp.array([[0.5]]), jnp.array([[0.1, 0.05]]), jnp.eye(2), jnp.ones(1), jnp.ones(2))
    trajectory = nndyn.integrate(nndyn.Setting(K=1, M=2, lr=1.0, batch=10**12), start, np.array([0.0, 500.0]))
    assert float(trajectory.eg[-1]) == pytest.approx(best, rel=1e-7)


def test_linear_network_matches_its_exact_solution():
    """For g(x) = x the soft committee machine's error obeys dε/dt = −λ ε + K²η²σ²/(2B) with
    λ = 2Kη − K²η²/B (from e = Σ_k w_k − Σ_m w*_m), so ε(t) = ε∞ + (ε0 − ε∞) exp(−λt)."""
    K, M, lr, sigma, batch = 3, 2, 0.3, 0.4, 2
    setting = nndyn.Setting(K=K, M=M, lr=lr, sigma=sigma, batch=batch, activation="linear")
    rng = np.random.default_rng(0)
    W, W_teacher = rng.normal(size=(K, 50)), rng.normal(size=(M, 50))
    start = nndyn.OrderParameters.from_weights(W, W_teacher)
    times = np.linspace(0.0, 5.0, 26)
    trajectory = nndyn.integrate(setting, start, times, rtol=1e-12, atol=1e-14)
    rate = 2 * K * lr - K**2 * lr**2 / batch
    floor = K**2 * lr**2 * sigma**2 / (2 * batch * rate)
    exact = floor + (float(trajectory.eg[0]) - floor) * np.exp(-rate * times)
    np.testing.assert_allclose(np.asarray(trajectory.eg), exact, rtol=1e-9)


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_solve_vmaps_over_learning_rate_and_noise():
    lrs, sigmas = jnp.array([0.2, 0.5, 0.8]), jnp.array([0.0, 0.1, 0.3])
    times = jnp.linspace(0.0, 10.0, 6)
    setting = nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer=True)
    init = goldt_init()
    args = setting.ode_args(init.T, init.v_star)
    options = nndyn.ODEOptions()

    def run(lr, sigma):
        state = init.as_ode_state()
        return nndyn.solve("erf", state, {**args, "lr": lr, "lr_v": lr, "sigma": sigma}, times, options).eg

    batched = jax.vmap(run)(lrs, sigmas)
    for j in range(3):
        single = nndyn.integrate(
            setting.replace(lr=float(lrs[j]), lr_v=float(lrs[j]), sigma=float(sigmas[j])), init, times
        )
        np.testing.assert_allclose(batched[j], single.eg, rtol=1e-12)


def test_integrate_maps_over_a_batch_of_initial_states():
    rng = np.random.default_rng(1)
    W, W_teacher = rng.normal(size=(3, 2, 100)), rng.normal(size=(2, 100))
    states = [nndyn.OrderParameters.from_weights(w, W_teacher) for w in W]
    batch = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)
    times = np.linspace(0.0, 5.0, 6)
    together = nndyn.integrate(SCM, batch, times)
    assert together.Q.shape == (3, 6, 2, 2)
    for j, state in enumerate(states):
        np.testing.assert_allclose(together.eg[j], nndyn.integrate(SCM, state, times).eg, rtol=1e-12)


@pytest.mark.slow  # compiles three solves
def test_runs_apart_in_tolerances_or_in_sizes_within_a_bucket_share_one_program():
    """`integrate` pads its stack of states and its save times to their bucket (1, 2, 3, 4, 6, 8,
    12, …; `nndyn.core.solver.bucket`) and takes rtol, atol and the divergence threshold as data:
    after a run of 5 states saved 20 times, 6 states saved 23 times at other tolerances compile
    nothing, while 7 states do (the next bucket). Padding changes no element: the 5 states agree
    with the first 5 of the 6 (the same program) and with 3 of them solved unpadded (another
    program) to 1e-12, round-off against the solver's rtol of 1e-8."""
    from test_sgd import compilations

    rng = np.random.default_rng(2)
    W_teacher = rng.normal(size=(2, 100))
    states = [nndyn.OrderParameters.from_weights(w, W_teacher) for w in rng.normal(size=(7, 2, 100))]

    stack = {count: jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states[:count])
             for count in (3, 5, 6, 7)}
    five = nndyn.integrate(SCM, stack[5], np.linspace(0.0, 19.0, 20))
    six = []
    assert compilations(lambda: six.append(nndyn.integrate(SCM, stack[6], np.linspace(0.0, 22.0, 23), rtol=1e-9,
                                                           atol=1e-11, divergence_threshold=1e5))) == 0
    assert compilations(lambda: nndyn.integrate(SCM, stack[7], np.linspace(0.0, 22.0, 23))) > 0
    assert five.eg.shape == (5, 20) and six[0].eg.shape == (6, 23)
    three = nndyn.integrate(SCM, stack[3], np.linspace(0.0, 19.0, 20))
    np.testing.assert_allclose(five.eg[:3], three.eg, rtol=1e-12)
    same = nndyn.integrate(SCM, stack[6], np.linspace(0.0, 19.0, 20))
    np.testing.assert_allclose(five.Q, same.Q[:5], rtol=1e-12)


def test_an_euler_step_that_does_not_divide_the_save_spacing_is_said():
    """Saves between Euler steps are interpolations: a warning, not silence (SGD's save grid, a
    multiple of 1/N, never warns)."""
    import warnings

    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    init = nndyn.OrderParameters.from_weights(np.eye(2, 10), np.eye(2, 10)[::-1])
    with pytest.warns(RuntimeWarning, match="does not divide the spacing of t"):
        nndyn.integrate(setting, init, np.linspace(0, 1, 4), method="euler", dt=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        nndyn.integrate(setting, init, np.linspace(0, 1, 5), method="euler", dt=0.05)


@pytest.mark.slow  # compiles an implicit solve of the full flows
def test_the_implicit_method_solves_the_same_flows():
    """method="implicit" (Kvaerno5) against the explicit adaptive solve through the plateau and
    the escape of Goldt's run: ε_g within 1e-5 relative (both at rtol 1e-8; the difference is the
    two solvers' errors, amplified by the escape's instability, and far below the 6-digit
    reference's resolution near the plateau), and a wrong η visible by far."""
    t = np.array([0.0, 9.92, 49.81, 99.13, 197.89])
    explicit = nndyn.integrate(SCM, goldt_init(), t)
    implicit = nndyn.integrate(SCM, goldt_init(), t, method="implicit")
    np.testing.assert_allclose(implicit.eg, explicit.eg, rtol=1e-5)
    np.testing.assert_allclose(implicit.Q, explicit.Q, rtol=1e-5, atol=1e-9)
    slower = nndyn.integrate(SCM.replace(lr=0.49), goldt_init(), t, method="implicit")
    assert np.max(np.abs(slower.eg - explicit.eg) / explicit.eg) > 1e-3
