"""Structured inputs x ~ N(0, Σ) (docs/conventions.md, "Structured inputs"): the flows per level
against the isotropic ones, against Monte Carlo over inputs sampled with that Σ, against the
exact solution of the linear network and its power law, and ODE against SGD (the verdict)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import nndyn
from nndyn.core import spectrum
from nndyn.core.kernels import load
from nndyn.core.schema import ParameterError
from nndyn.core.state import measure_levels

PARAMETERS = {"lr": 0.7, "lr_v": 0.3, "sigma": 0.2, "batch": 2, "weight_decay": 0.01}


def weights(K, M, N, seed, spread=(1.0,)):
    """Random W (K, N), W* (M, N), v, v*; W's coordinates scaled level by level by `spread`
    (equal parts), so that the overlaps differ from level to level."""
    rng = np.random.default_rng(seed)
    scale = np.repeat(np.asarray(spread), N // len(spread))
    return (rng.normal(size=(K, N)) * scale, rng.normal(size=(M, N)), rng.normal(size=K), rng.normal(size=M))


def level_flows(kernels, state, levels, **parameters):
    """The level flows of `state` (jitted: evaluated eagerly, ReLU's take a minute)."""
    rho, fraction = (jnp.asarray(f(levels)) for f in (spectrum.eigenvalues, spectrum.fractions))

    def flows(Q, R, v, T, v_star):
        return kernels.level_flows(Q, R, v, T, v_star, rho, fraction, **parameters)

    return jax.jit(flows)(state.Q_levels, state.R_levels, state.v, state.T_levels, state.v_star)


def isotropic_flows(kernels, state, **parameters):
    """The isotropic flows of `state`, jitted."""
    def flows(Q, R, v, T, v_star):
        return kernels.flows(Q, R, v, T, v_star, **parameters)

    return jax.jit(flows)(state.Q, state.R, state.v, state.T, state.v_star)


@pytest.mark.parametrize("activation, teacher", [
    ("erf", "erf"), ("quadratic", "quadratic"), ("linear", "linear"),
    pytest.param("relu", "relu", marks=pytest.mark.slow),  # over 2 s: ReLU's orthant rule compiles
    pytest.param("erf", "relu", marks=pytest.mark.slow),
])
def test_one_level_is_the_isotropic_flows_and_levels_of_one_eigenvalue_sum_to_them(activation, teacher):
    # One level of eigenvalue 1 is isotropic inputs: the level path must give the isotropic flows
    # (it evaluates the same closed forms on the same entries). Splitting the
    # coordinates into levels of equal eigenvalue must give flows whose sums are the isotropic
    # ones: here the projected u slot's blocks are genuinely new (generic closed forms where the
    # isotropic path takes coincidence variants), so this checks the projection; to round-off.
    kernels = load(activation, teacher)
    W, W_star, v, v_star = weights(3, 2, 600, seed=1, spread=(1.0, 0.6, 1.4))
    isotropic = nndyn.OrderParameters.from_weights(W, W_star, v, v_star)
    expected = isotropic_flows(kernels, isotropic, **PARAMETERS)
    scale = max(float(np.max(np.abs(reference))) for reference in expected)
    one = ((1.0, 1.0),)
    state = nndyn.OrderParameters.from_weights(W, W_star, v, v_star, spectrum=one)
    for value, reference in zip(level_flows(kernels, state, one, **PARAMETERS), expected):
        # two compiled programs: equal up to the summation order XLA picks (bit for bit on the
        # machine this was written on), so within 8 ulps of the flows' scale
        np.testing.assert_allclose(np.asarray(value).reshape(np.shape(reference)), reference, rtol=0,
                                   atol=8 * np.finfo(np.float64).eps * scale)
    three = ((1.0, 0.25), (1.0, 0.35), (1.0, 0.4))
    state = nndyn.OrderParameters.from_weights(W, W_star, v, v_star, spectrum=three)
    dQ, dR, dv = level_flows(kernels, state, three, **PARAMETERS)
    for value, reference in zip((dQ.sum(0), dR.sum(0), dv), expected):
        np.testing.assert_allclose(value, reference, rtol=0, atol=1e-14 * scale)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_level_flows_agree_with_monte_carlo_over_inputs_sampled_with_the_spectrum(activation):
    # Inputs x ~ N(0, Σ) in N dimensions with real weights (not fields drawn from the ODE's own
    # covariance): the step's projections on P_ℓ w and P_ℓ w* and its square on P_ℓ, averaged
    # over samples, against the level flows; within 5 standard errors per entry. The η terms are
    # exact at any N; the η² term's x P_ℓ x/N differs from ρ_ℓ f_ℓ by O(1/N) = 0.1 %, far below
    # its standard error here (about 1 %).
    K, M, N, samples, chunk = 2, 2, 1000, 100_000, 5000
    levels = ((2.5, 0.3), (0.5, 0.7))
    lr, sigma = 0.8, 0.3
    kernels = load(activation)
    W, W_star, v, v_star = weights(K, M, N, seed=2, spread=(1.2, 0.7))
    state = nndyn.OrderParameters.from_weights(W, W_star, v, v_star, spectrum=levels)
    indicators = spectrum.indicators(levels, N)
    scales = spectrum.coordinate_scales(levels, N)
    rng = np.random.default_rng(3)
    g = {"erf": lambda x: np.vectorize(math.erf)(x / np.sqrt(2)), "relu": lambda x: np.maximum(x, 0)}[activation]
    g_prime = {"erf": lambda x: np.sqrt(2 / np.pi) * np.exp(-x**2 / 2), "relu": lambda x: (x > 0) * 1.0}[activation]
    totals = {"R": [], "Q": []}
    for _ in range(samples // chunk):
        x = rng.standard_normal((chunk, N)) * scales
        lam, nu = x @ W.T / np.sqrt(N), x @ W_star.T / np.sqrt(N)
        delta = g(nu) @ v_star - g(lam) @ v + sigma * rng.standard_normal(chunk)
        F = lr * v * delta[:, None] * g_prime(lam)  # (chunk, K)
        lam_l = np.einsum("kn,ln,sn->slk", W, indicators, x) / np.sqrt(N)  # (chunk, L, K)
        nu_l = np.einsum("mn,ln,sn->slm", W_star, indicators, x) / np.sqrt(N)
        square = np.einsum("sn,ln->sl", x**2, indicators) / N  # x P_ℓ x/N
        totals["R"].append(np.einsum("si,slm->slim", F, nu_l))
        first = np.einsum("si,slk->slik", F, lam_l)
        totals["Q"].append(first + np.swapaxes(first, -1, -2) + np.einsum("si,sk,sl->slik", F, F, square))
    dQ, dR, _ = level_flows(kernels, state, levels, lr=lr, lr_v=lr, sigma=sigma, batch=1)
    for name, analytic in (("Q", dQ), ("R", dR)):
        estimates = np.concatenate(totals[name])
        mean, error = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(len(estimates))
        z = np.abs(np.asarray(analytic) - mean) / error
        assert np.all(z <= 5), f"{activation} d{name}_levels: |analytic − MC| / SE = {z}"


def test_the_linear_network_follows_its_exact_solution():
    # K = M = 1, g linear, v = v* = 1, B = 1: D^ℓ = Q^ℓ − 2R^ℓ + T^ℓ obeys the linear system
    # dD^ℓ/dt = −2η ρ_ℓ D^ℓ + η² ρ_ℓ f_ℓ Σ_m ρ_m D^m (docs/structured.md), ε_g = ½ Σ ρ_ℓ D^ℓ:
    # solved by a matrix exponential, independently of the generated code.
    levels = spectrum.power_law(1.0, 12)
    lr = 0.3
    setting = nndyn.Setting(K=1, M=1, lr=lr, activation="linear", input_spectrum=levels)
    rho, fraction = spectrum.eigenvalues(levels), spectrum.fractions(levels)
    W, W_star, _, _ = weights(1, 1, 1200, seed=4)
    state = nndyn.OrderParameters.from_weights(0.3 * W, W_star, spectrum=levels)
    t = np.linspace(0, 40, 21)
    ode = nndyn.integrate(setting, state, t, rtol=1e-11, atol=1e-13)  # tight: ε_g ≪ the state's entries
    D0 = np.asarray(state.Q_levels - 2 * state.R_levels + state.T_levels)[:, 0, 0]
    A = -2 * lr * np.diag(rho) + lr**2 * np.outer(rho * fraction, rho)
    exact = np.array([0.5 * rho @ expm(A * time) @ D0 for time in t])
    np.testing.assert_allclose(np.asarray(ode.eg), exact, rtol=1e-9)


def test_the_linear_network_error_follows_the_power_law_of_the_spectrum():
    # Small η, zero initial student, ρ_ℓ ∝ ℓ^−(1+a): ε_g(t) ≈ ½ Σ_ℓ ρ_ℓ f_ℓ e^{−2ηρ_ℓ t} ∝ t^{−a/(1+a)}
    # between the fastest level's time t_1 = 1/(2ηρ_1) and the slowest's t_L (docs/structured.md).
    # Over t ∈ [10 t_1, 1000 t_1] (≪ t_L at L = 2000) the exponent of that sum is −a/(1+a) up to
    # its finite-L and discreteness corrections (0.0034 here, computed below), and the exponent
    # fitted to the integrated flows (with their η² term) is that of the sum to 5e-4 (measured: 1.6e-4).
    a, L, lr = 1.0, 2000, 0.05
    levels = spectrum.power_law(a, L)
    rho = spectrum.eigenvalues(levels)
    setting = nndyn.Setting(K=1, M=1, lr=lr, activation="linear", input_spectrum=levels)
    zero = np.zeros((L, 1, 1))
    state = nndyn.OrderParameters(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.ones(1), jnp.ones(1),
                                  Q_levels=zero, R_levels=zero, T_levels=np.full((L, 1, 1), 1.0 / L))
    fastest = 1 / (2 * lr * rho[0])
    t = np.concatenate([[0.0], np.geomspace(10 * fastest, 1000 * fastest, 21)])
    eg = np.asarray(nndyn.integrate(setting, state, t).eg)[1:]
    slope = np.polyfit(np.log(t[1:]), np.log(eg), 1)[0]
    exact = 0.5 * np.sum(rho / L * np.exp(-2 * lr * np.outer(t[1:], rho)), axis=1)
    exact_slope = np.polyfit(np.log(t[1:]), np.log(exact), 1)[0]
    assert abs(exact_slope + a / (1 + a)) < 0.005, exact_slope
    assert abs(slope - exact_slope) < 5e-4, (slope, exact_slope)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
@pytest.mark.parametrize("levels, teacher", [(((1.6, 0.5), (0.4, 0.5)), None), (spectrum.power_law(1.0, 8), None),
                                             (spectrum.power_law(1.0, 4), (3.0, 0.6, 0.3, 0.1))],
                         ids=["two-levels", "power-law", "aligned-teacher"])
def test_sgd_follows_the_level_flows_and_the_verdict_refuses_the_wrong_spectrum(levels, teacher):
    setting = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=levels, teacher_spectrum=teacher)
    sim = nndyn.simulate(setting, N=500, t_max=30, seeds=4, init_scale=0.5)
    assert sim.Q_levels is not None and sim.Q_levels.shape == (4, 31, len(levels), 2, 2)
    np.testing.assert_allclose(np.asarray(sim.Q_levels).sum(2), sim.Q, rtol=1e-12, atol=1e-14)
    right = nndyn.verdict(setting, sim)
    assert right.answer == "yes", right
    # the same levels with every eigenvalue 1: another Σ of the same trace
    flat = tuple((1.0, fraction) for _, fraction in levels)
    wrong = nndyn.verdict(setting.replace(input_spectrum=flat), sim)
    assert wrong.answer == "no", wrong


def test_measured_levels_sum_to_the_overlaps_and_sizes_follow_the_fractions():
    levels = ((3.0, 0.125), (1.0, 0.375), (0.6, 0.5))
    assert spectrum.level_sizes(levels, 1000).tolist() == [125, 375, 500]
    assert spectrum.level_sizes(levels, 7).sum() == 7
    W, W_star, v, v_star = weights(3, 2, 1000, seed=5)
    state = nndyn.OrderParameters.from_weights(W, W_star, v, v_star, spectrum=levels)
    for name in ("Q", "R", "T"):
        np.testing.assert_allclose(np.sum(getattr(state, f"{name}_levels"), axis=0), getattr(state, name), atol=1e-12)
    Q_levels = measure_levels(W, W_star, spectrum.indicators(levels, 1000))[0]
    np.testing.assert_allclose(Q_levels[0], W[:, :125] @ W[:, :125].T / 1000, atol=1e-13)
    scales = spectrum.coordinate_scales(levels, 1000)
    assert np.isclose(np.mean(scales**2), 3 * 0.125 + 0.375 + 0.3)


def test_power_laws_are_levels_of_equal_fraction_normalised_to_unit_trace():
    levels = spectrum.power_law(0.5, 10)
    rho, fraction = spectrum.eigenvalues(levels), spectrum.fractions(levels)
    np.testing.assert_allclose(fraction, 0.1)
    assert math.isclose(float(rho @ fraction), 1.0, rel_tol=1e-14)
    np.testing.assert_allclose(rho[1:] / rho[:-1], (np.arange(2, 11) / np.arange(1, 10)) ** -1.5, rtol=1e-14)
    assert spectrum.power_law(0.5, 10, normalise=False)[0][0] == 1.0


@pytest.mark.parametrize("bad, message", [
    ([[1.0, 0.5]], "must be levels whose fractions sum to 1, got 0.5"),
    ([[0.0, 1.0]], "must be levels of finite eigenvalue > 0, got 0.0 at level 1"),
    ([[1.0, 0.5], [float("nan"), 0.5]], "must be levels of finite eigenvalue > 0, got nan at level 2"),
    ([[1.0, 1.5], [1.0, -0.5]], "must be levels of fraction in (0, 1], got 1.5 at level 1"),
    ("flat", "must be a non-empty list"),
    ([], "must be a non-empty list"),
    ([[1.0, 0.5, 0.5]], "must be a list of [eigenvalue, fraction] pairs, got [1.0, 0.5, 0.5] at level 1"),
    ([[True, 1.0]], "must be pairs of numbers, got True at level 1"),
])
def test_a_bad_spectrum_is_one_line_naming_the_field(bad, message):
    with pytest.raises(ParameterError) as error:
        nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=bad)
    assert str(error.value).startswith(f"input_spectrum {message}")
    assert error.value.name == "input_spectrum" and "\n" not in str(error.value)


def test_states_and_settings_must_agree_on_the_levels():
    W, W_star, v, v_star = weights(2, 2, 100, seed=6)
    structured = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=((2.0, 0.5), (1.0, 0.5)))
    with pytest.raises(ValueError, match="no overlaps per level"):
        nndyn.integrate(structured, nndyn.OrderParameters.from_weights(W, W_star), [0, 1])
    three = nndyn.OrderParameters.from_weights(W, W_star, spectrum=((1.0, 0.2), (1.0, 0.3), (1.0, 0.5)))
    with pytest.raises(ValueError, match="3 levels but the setting's input_spectrum has 2"):
        nndyn.integrate(structured, three, [0, 1])
    with pytest.raises(ValueError, match="isotropic"):
        nndyn.integrate(structured.replace(input_spectrum=None), three, [0, 1])
    with pytest.raises(ParameterError, match="level 2 of input_spectrum holds no coordinate at N = 3"):
        nndyn.simulate(structured.replace(input_spectrum=((1.0, 0.9), (1.0, 0.1))), N=3, t_max=1, seeds=2)


def test_trajectories_carry_the_levels_into_tidy_tables():
    levels = ((2.0, 0.5), (0.5, 0.5))
    setting = nndyn.Setting(K=2, M=1, lr=0.5, input_spectrum=levels)
    W, W_star, _, _ = weights(2, 1, 200, seed=7)
    ode = nndyn.integrate(setting, nndyn.OrderParameters.from_weights(W, W_star, spectrum=levels), [0, 1, 2])
    assert ode.Q_levels.shape == (3, 2, 2, 2) and ode.T_levels.shape == (2, 1, 1)
    np.testing.assert_allclose(np.asarray(ode.Q_levels).sum(1), ode.Q, rtol=1e-14)
    frame = ode.to_dataframe()
    rows = frame[(frame.quantity == "Q_levels") & (frame.t == 2)]
    assert len(rows) == 8 and set(rows.level) == {0, 1}
    assert frame[frame.quantity == "Q"].level.isna().all()
    dataset = ode.to_xarray()
    assert dataset.Q_levels.dims == ("t", "level", "student", "student2")


BASE = 'name = "inputs"\nK = 2\nM = 2\nlr = 0.5\nN = 200\nt_max = 2\nseeds = 2\n'


@pytest.mark.parametrize("table, expected", [
    ("[inputs]\npower_law = 1.0\nlevels = 4\n", spectrum.power_law(1.0, 4)),
    ("[inputs]\npower_law = 0.5\nlevels = 3\nnormalise = false\n", spectrum.power_law(0.5, 3, normalise=False)),
    ("[inputs]\nspectrum = [[2.0, 0.25], [0.5, 0.75]]\n", ((2.0, 0.25), (0.5, 0.75))),
    ("input_spectrum = [[2.0, 0.25], [0.5, 0.75]]\n", ((2.0, 0.25), (0.5, 0.75))),
])
def test_a_run_config_takes_the_spectrum_as_levels_or_a_power_law(tmp_path, table, expected):
    from nndyn.app.config import read_config

    path = tmp_path / "run.toml"
    path.write_text(BASE + table)
    (panel,) = read_config(path).panels
    assert panel.setting.input_spectrum == expected and "levels" in panel.label


@pytest.mark.parametrize("table, problem", [
    ("[inputs]\npower_law = 1.0\n", "[inputs] power_law needs levels = L"),
    ("[inputs]\npower_law = 1.0\nlevels = 4\nspectrum = [[1.0, 1.0]]\n", "[inputs] needs either spectrum"),
    ("[inputs]\nspectrum = [[1.0, 1.0]]\nlevels = 4\n", "[inputs] levels apply to a power_law, not a spectrum"),
    ("[inputs]\npower_law = -2.0\nlevels = 4\n", "[inputs] power_law must be a finite number > -1, got -2.0"),
    ("[inputs]\nspectrum = [[1.0, 0.5]]\n", "[inputs] spectrum must be levels whose fractions sum to 1, got 0.5"),
    ("[inputs]\ncolour = 1\n", "[inputs] unknown field 'colour'"),
    ("input_spectrum = [[1.0, 1.0]]\n[inputs]\npower_law = 1.0\nlevels = 4\n", "either as input_spectrum or in"),
])
def test_a_bad_inputs_table_is_one_line(tmp_path, table, problem):
    from nndyn.app.config import ConfigError, read_config

    path = tmp_path / "run.toml"
    path.write_text(BASE + table)
    with pytest.raises(ConfigError) as error:
        read_config(path)
    assert len(error.value.problems) == 1 and problem in error.value.problems[0], error.value.problems


def test_analyse_refuses_a_spectrum_with_one_line(tmp_path):
    from command import in_process

    path = tmp_path / "run.toml"
    path.write_text(BASE + "[inputs]\npower_law = 1.0\nlevels = 4\n")
    result = in_process("analyse", path, cwd=tmp_path)
    assert result.returncode == 2 and "takes isotropic inputs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow  # over 2 s: a simulation at N = 4000
def test_the_teacher_spectrum_weights_the_teachers_levels():
    levels, teacher = ((2.0, 0.25), (2 / 3, 0.75)), (4.0, 0.5)
    with pytest.raises(ParameterError, match="teacher_spectrum must be one variance per level of input_spectrum "
                                             r"\(2\), got 3"):
        nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=levels, teacher_spectrum=(1.0, 1.0, 1.0))
    with pytest.raises(ParameterError, match=r"input_spectrum \(0\), got 2"):
        nndyn.Setting(K=2, M=2, lr=0.5, teacher_spectrum=teacher)
    setting = nndyn.Setting(K=2, M=3, lr=0.5, input_spectrum=levels, teacher_spectrum=teacher)
    N = 4000
    sim = nndyn.simulate(setting, N=N, t_max=1, seeds=2)
    diagonal = np.diagonal(np.asarray(sim.T_levels)[0], axis1=-2, axis2=-1)  # (L, M): τ_ℓ χ²_{n_ℓ}/N
    sizes = spectrum.level_sizes(levels, N)
    expected = np.asarray(teacher)[:, None] * sizes[:, None] / N
    spread = np.asarray(teacher)[:, None] * np.sqrt(2 * sizes)[:, None] / N
    assert np.all(np.abs(diagonal - expected) < 5 * spread), (diagonal, expected)


def test_a_run_config_takes_the_teacher_spectrum_in_the_inputs_table(tmp_path):
    from nndyn.app.config import read_config

    path = tmp_path / "run.toml"
    path.write_text(BASE + "[inputs]\npower_law = 1.0\nlevels = 2\nteacher_spectrum = [2.0, 0.5]\n")
    (panel,) = read_config(path).panels
    assert panel.setting.teacher_spectrum == (2.0, 0.5) and panel.setting.input_spectrum == spectrum.power_law(1.0, 2)


def test_the_level_terms_are_the_isotropic_terms_at_one_level():
    # The derivation: the flows of one level with u^ℓ = u and ρ_ℓ f_ℓ = 1 are the isotropic flows,
    # term for term; only I3's u slot (slot 1) is projected.
    from nndyn.derive import flows

    def plain(term, weight):
        return term.target, term.integral, term.indices, term.weights, term.scalar.subs(flows.level_weight, weight)

    levels, isotropic = flows.derive_flows(levels=True), flows.derive_flows()
    assert [plain(term, 1) for term in levels] == [plain(term, 1) for term in isotropic]
    assert {term.projected for term in levels if term.integral == "I3"} == {1}
    assert all(term.projected is None for term in levels if term.integral != "I3")
    assert {term.integral for term in levels if term.scalar.has(flows.level_weight)} == {"I4", "J2"}
