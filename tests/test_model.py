"""The model description: teacher and student activations apart, output scaling,
feedback alignment, weight decay. Mixed integrals against Monte Carlo on Hypothesis-drawn
blocks, the whole vector field against a direct Monte-Carlo estimate of the SGD update, the best
linear fit's closed form, and bad input. ODE against SGD: tests/test_ode_vs_sgd.py."""

import dataclasses
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import covariance_blocks, monte_carlo, psd_root, seed_of
from hypothesis import HealthCheck, given, settings
from scipy.special import erf

import nndyn
from nndyn import generated
from nndyn.core.kernels import load

#: Each built-in activation and its derivative, written independently of the generated code.
FUNCTIONS = {
    "erf": (lambda x: erf(x / np.sqrt(2)), lambda x: np.sqrt(2 / np.pi) * np.exp(-x**2 / 2)),
    "linear": (lambda x: x, np.ones_like),
    "quadratic": (lambda x: x**2, lambda x: 2 * x),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: np.heaviside(x, 0.5)),
}
FACTORS = {"I2": "gg", "I3": "pug", "I4": "ppgg"}
#: The mixed signatures the flows use (a letter per slot: s student, t teacher, - the u slot).
SIGNATURES = [("I2", "st"), ("I2", "ts"), ("I3", "s-t"), ("I4", "ssst"), ("I4", "ssts"), ("I4", "sstt")]


def integrand(name, signature, student, teacher):
    """The integrand of a mixed integral on u (..., r)."""
    def value(u):
        total = 1.0
        for slot, (factor, letter) in enumerate(zip(FACTORS[name], signature)):
            g, g_prime = FUNCTIONS[student if letter == "s" else teacher]
            total = total * {"g": g, "p": g_prime, "u": lambda x: x}[factor](u[..., slot])
        return total
    return value


@pytest.mark.parametrize("signature", SIGNATURES, ids="".join)
@pytest.mark.parametrize("pair", [pytest.param(pair, marks=pytest.mark.slow) if "relu" in pair else pair
                                  for pair in generated.PAIRS], ids="__".join)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_mixed_integrals_agree_with_monte_carlo(pair, signature):
    """Every mixed integral of every built-in pair, on full, near-singular and repeated-row
    blocks (a repeated row between a student and a teacher slot is a student unit that matches
    a teacher unit, R = Q = T there)."""
    (student, teacher), (name, letters) = pair, signature
    kernels = load(student, teacher)
    assert kernels.pair is not None and kernels.teacher is not None

    @settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(covariance_blocks(len(letters)))
    def check(C):
        mean, error = monte_carlo(integrand(name, letters, student, teacher), C, 400_000, seed_of(C))
        value = float(kernels.integral(name, jnp.asarray(C), letters))
        assert abs(value - mean) <= 5 * error + 1e-12, (
            f"{student}/{teacher} {name}[{letters}] {C.tolist()}: closed form {value}, MC {mean} ± {error}")

    check()


def test_mixed_closed_forms_need_no_quadrature():
    """Mixed erf/ReLU/linear/quadratic pairs are derived in closed form (erf as a sign of a
    noisier variable), never by the quadrature fallback."""
    for student, teacher in generated.PAIRS:
        provenance = load(student, teacher).pair.PROVENANCE
        assert all(text.startswith("derived") for text in provenance.values()), (student, teacher, provenance)


def test_a_teacher_with_the_student_activation_is_the_plain_model():
    assert load("erf", "erf") is load("erf")
    assert nndyn.Setting(K=2, M=2, lr=0.5).kernels is nndyn.Setting(K=2, M=2, lr=0.5, teacher_activation="erf").kernels


# -- the vector field against a direct Monte-Carlo estimate of the SGD update --------------------

K, M = 3, 2
SAMPLES = 1_000_000


def sgd_update_samples(student, teacher, state, args, rng):
    """Per-sample Monte-Carlo values of each flow, straight from the update rule of
    docs/conventions.md (batch B = 1): F_i = η e_i Δ g'(λ_i), G_i = η_v κ Δ g(λ_i)."""
    (g, g_prime), (g_star, _) = FUNCTIONS[student], FUNCTIONS[teacher]
    Omega = np.block([[state["Q"], state["R"]], [state["R"].T, args["T"]]])
    u = rng.standard_normal((SAMPLES, K + M)) @ psd_root(Omega).T
    lam, rho = u[:, :K], u[:, K:]
    delta = (args["kappa_star"] * g_star(rho) @ args["v_star"] - args["kappa"] * g(lam) @ state["v"]
             + args["sigma"] * rng.standard_normal(SAMPLES))
    feedback = args["kappa"] * args.get("b", state["v"])
    F = args["lr"] * feedback * delta[:, None] * g_prime(lam)  # (samples, K)
    G = args["lr_v"] * args["kappa"] * delta[:, None] * g(lam)
    decay, decay_v = args["weight_decay"], args["weight_decay_v"]
    return {
        "R": np.einsum("si,sn->sin", F, rho) - decay * state["R"],
        "Q": (np.einsum("si,sk->sik", F, lam) + np.einsum("sk,si->sik", F, lam) + np.einsum("si,sk->sik", F, F)
              - 2 * decay * state["Q"]),
        "v": G - decay_v * state["v"],
    }


@pytest.mark.parametrize("student, teacher, feedback, scaling", [
    # a ReLU student compiles for a minute here (its coincidence variants on every block); the
    # ODE-against-SGD tests cover it
    pytest.param("erf", "relu", "alignment", "1/K", marks=pytest.mark.slow),
    pytest.param("quadratic", "erf", "backprop", "1/sqrt(K)", marks=pytest.mark.slow),
    ("linear", "erf", "alignment", "1"),
])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_vector_field_agrees_with_the_sgd_update(student, teacher, feedback, scaling):
    """Mixed activations, feedback alignment, output scaling and weight decay at once: the
    generated flows equal the expectation of the update (5 standard errors per entry)."""
    rng = np.random.default_rng(7)
    factor = rng.normal(size=(K + M, K + M + 2)) / np.sqrt(K + M + 2)
    Omega = factor @ factor.T * 1.5
    setting = nndyn.Setting(K=K, M=M, lr=0.7, lr_v=0.4, sigma=0.3, train_second_layer=True, activation=student,
                            teacher_activation=teacher, feedback=feedback, output_scaling=scaling,
                            weight_decay=0.2, weight_decay_v=0.1)
    state = {"Q": Omega[:K, :K], "R": Omega[:K, K:], "v": rng.normal(size=K)}
    b = rng.normal(size=K) if feedback == "alignment" else None
    args = setting.ode_args(Omega[K:, K:], rng.normal(size=M), b)
    flows = jax.jit(setting.kernels.rhs)(0.0, {name: jnp.asarray(value) for name, value in state.items()}, args)
    samples = sgd_update_samples(student, teacher, state, args, rng)
    for name, values in samples.items():
        mean, error = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(SAMPLES)
        z = np.abs(np.asarray(flows[name]) - mean) / (error + 1e-15)
        assert np.all(z <= 5), f"{name}: |flow − MC| / SE = {z}"


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_generalisation_error_with_mixed_activations_and_scaling():
    rng = np.random.default_rng(11)
    factor = rng.normal(size=(K + M, K + M))
    Omega = factor @ factor.T / (K + M)
    setting = nndyn.Setting(K=K, M=M, lr=0.5, activation="relu", teacher_activation="erf", output_scaling="1/K")
    v, v_star = rng.normal(size=K), rng.normal(size=M)
    eg = jax.jit(setting.kernels.eg)({"Q": Omega[:K, :K], "R": Omega[:K, K:], "v": v},
                            setting.ode_args(Omega[K:, K:], v_star))
    (g, _), (g_star, _) = FUNCTIONS["relu"], FUNCTIONS["erf"]

    def error(u):
        return 0.5 * (g_star(u[..., K:]) @ v_star / M - g(u[..., :K]) @ v / K) ** 2

    mean, standard = monte_carlo(error, Omega, SAMPLES, 5)
    assert abs(float(eg) - mean) <= 5 * standard


# -- the best linear fit ------------------------------------------------------------------------


def best_linear_fit_error(T):
    """ε_g of the best linear student ŷ = w·x/√N of the erf teacher Σ_m erf(ρ_m/√2) with
    overlaps T: the projection λ = Σ_m c_m ρ_m, c_m = ⟨g'(ρ_m)⟩ = √(2/π)/√(1 + T_mm) (Stein), so
    ε = ½(⟨y²⟩ − cᵀ T c) with ⟨y²⟩ = Σ_mn (2/π) arcsin(T_mn / √((1 + T_mm)(1 + T_nn)))."""
    d = np.diag(T)
    second_moment = np.sum(2 / np.pi * np.arcsin(T / np.sqrt(np.outer(1 + d, 1 + d))))
    c = np.sqrt(2 / np.pi) / np.sqrt(1 + d)
    return 0.5 * (second_moment - c @ T @ c), c


@pytest.mark.parametrize("T", [np.eye(2), np.array([[1.2, 0.3], [0.3, 0.7]])])
def test_linear_student_on_an_erf_teacher_converges_to_the_best_linear_fit(T):
    """K = 1 linear student, M = 2 erf teacher: without the η² term (B → ∞) the flows' fixed
    point is the best linear fit, ε_g = 1/3 − 1/π for T = I; at finite η, SGD's noise raises ε_g
    by O(η)."""
    expected, c = best_linear_fit_error(T)
    if np.allclose(T, np.eye(2)):
        assert expected == pytest.approx(1 / 3 - 1 / np.pi, rel=1e-15)
    setting = nndyn.Setting(K=1, M=2, lr=0.5, activation="linear", teacher_activation="erf", batch=10**12)
    start = nndyn.OrderParameters(np.array([[0.3]]), np.array([[0.1, 0.2]]), T, np.ones(1), np.ones(2))
    point = nndyn.fixed_point(setting, start)
    assert point.eg == pytest.approx(expected, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(np.asarray(point.state.R)[0], T @ c, rtol=1e-9)
    assert point.kind == "stable"
    excess = [nndyn.fixed_point(setting.replace(batch=1, lr=lr), start).eg - expected for lr in (0.2, 0.1)]
    assert excess[0] > excess[1] > 0 and excess[0] / excess[1] == pytest.approx(2, rel=0.1)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_model_input_gets_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"^teacher_activation: unknown activation 'tanh'") as refused:
        nndyn.Setting(K=2, M=2, lr=0.5, teacher_activation="tanh")
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match=r"^weight_decay must be a finite number >= 0, got -0.1$"):
        nndyn.Setting(K=2, M=2, lr=0.5, weight_decay=-0.1)
    with pytest.raises(ValueError, match=r"^weight_decay_v must be a finite number >= 0"):
        nndyn.Setting(K=2, M=2, lr=0.5, weight_decay_v=-1)
    with pytest.raises(ValueError, match=r"^output_scaling must be one of"):
        nndyn.Setting(K=2, M=2, lr=0.5, output_scaling="1/N")
    aligned = nndyn.Setting(K=2, M=2, lr=0.5, feedback="alignment")
    with pytest.raises(ValueError, match=r"^b must have shape \(\.\.\., K\) = \(\.\.\., 2\), got \(3,\)$"):
        nndyn.simulate(aligned, N=50, t_max=1, seeds=2, b=np.ones(3))
    state = nndyn.OrderParameters(np.eye(2), np.zeros((2, 2)), np.eye(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"^b: feedback = 'alignment' needs the feedback vector b"):
        nndyn.integrate(aligned, state, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^b has shape \(3,\); expected \(2,\)"):
        nndyn.integrate(aligned, dataclasses.replace(state, b=np.ones(3)), [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^b: a feedback vector is given but feedback is 'backprop'"):
        nndyn.simulate(nndyn.Setting(K=2, M=2, lr=0.5), N=50, t_max=1, seeds=2, b=np.ones(2))


def test_a_user_pair_without_its_module_names_the_command(tmp_path):
    source = Path(generated.__file__).with_name("relu.py").read_text()
    (tmp_path / "mine.py").write_text(source.replace("`python -m nndyn.derive`",
                                                     "`python -m nndyn.derive --name mine --expr 'Max(0, x)'`", 1))
    with pytest.raises(ValueError, match=r"^teacher_activation: no mixed integrals for the student activation relu "
                                         r"with the teacher activation erf; write them with: python -m nndyn.derive"):
        nndyn.Setting(K=2, M=2, lr=0.5, activation=str(tmp_path / "mine.py"), teacher_activation="erf")


def test_output_scalings_are_one_over_the_width():
    setting = nndyn.Setting(K=8, M=2, lr=0.5)
    assert [setting.replace(output_scaling=s).kappa for s in ("1", "1/K", "1/sqrt(K)")] == [1.0, 1 / 8, 1 / np.sqrt(8)]
    assert setting.replace(output_scaling="1/sqrt(K)").kappa_star == 1 / np.sqrt(2)


def test_every_signature_the_flows_use_is_generated():
    from nndyn.derive.lower import mixed_signatures

    assert sorted(mixed_signatures()) == sorted(SIGNATURES)
    for pair in generated.PAIRS:
        assert set(load(*pair).pair.INTEGRALS) == set(SIGNATURES)
    assert len(generated.PAIRS) == len(list(itertools.permutations(generated.MODULES, 2)))
