"""Saad & Solla's symmetric reduction for any K: derived with K a symbol, checked
against the full flows on the ansatz, and used where the full flows cannot go (K = 10⁴)."""

import jax
import numpy as np
import pytest
import sympy as sp

import nndyn
from nndyn.core import symmetric
from nndyn.core.fixed_points import learning_rate_threshold
from nndyn.core.symmetric import SymmetricState
from nndyn.derive import flows as derived_flows
from nndyn.derive import symmetric as derived

#: Settings that exercise every term: noise, minibatches, decay, a trained second layer, 1/K.
SETTINGS = {
    "soft committee machine, noise, B = 2, decay": dict(lr=0.7, sigma=0.3, batch=2, weight_decay=0.01),
    "two-layer, 1/K, decay of v": dict(lr=0.6, lr_v=0.4, train_second_layer=True, output_scaling="1/K",
                                       weight_decay_v=0.02),
}
STATE = SymmetricState(1.1, 0.2, 0.5, 0.1, 0.8)


def _compare(setting, state):
    """The full flows on the expanded state against the reduction: (largest difference, scale)."""
    K = setting.K
    full = state.expand(K)
    args = setting.ode_args(full.T, full.v_star)
    flow = jax.jit(setting.kernels.rhs)(0.0, full.as_ode_state(), args)  # one program, not op by op
    reduced = symmetric.flows(setting, state)
    off = ~np.eye(K, dtype=bool)
    pairs = [(flow["Q"][np.eye(K, dtype=bool)], reduced.Q), (flow["Q"][off], reduced.C),
             (np.diag(flow["R"]), reduced.R), (flow["R"][off], reduced.S), (flow["v"], reduced.v),
             (jax.jit(setting.kernels.eg)(full.as_ode_state(), args), symmetric.generalisation_error(setting, state))]
    difference = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a, _ in pairs)
    return difference, scale


CASES = [(2, name) for name in SETTINGS] + [
    pytest.param(K, name, marks=pytest.mark.slow)
    for K in range(3, 9) for name in SETTINGS if name == next(iter(SETTINGS)) or K == 5]


@pytest.mark.parametrize("K, name", CASES)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_reduction_is_the_full_flows_on_the_ansatz(K, name):
    """Every flow and ε_g, K = 2 … 8 (the second setting at K = 2 and 5): to round-off (a wrong
    multiplicity would be off by O(1))."""
    setting = nndyn.Setting(K=K, M=K, **SETTINGS[name])
    difference, scale = _compare(setting, STATE)
    assert difference < 1e-14 * max(scale, 1), (difference, scale)


@pytest.mark.slow
def test_the_reduction_with_a_teacher_activation_apart():
    """A ReLU student on an erf teacher (K = 3): the mixed signatures of the pair module."""
    K = 3
    setting = nndyn.Setting(K=K, M=K, lr=0.4, activation="relu", teacher_activation="erf")
    difference, scale = _compare(setting, SymmetricState(1.0, 0.3, 0.4, 0.1, 1.0))
    assert difference < 1e-14 * max(scale, 1), (difference, scale)


def test_multiplicities_count_every_assignment_of_units():
    """Summed over its patterns, a term's multiplicity is the number of unit assignments: K per
    student or teacher index, 2K per index over all units, whatever the free indices."""
    for target, (_, free) in derived.TARGETS.items():
        for summed in ("", "c", "cd", "nc", "kcd"):
            letters = [letter for letter in summed if letter not in free]
            total = sum(multiplicity for _, multiplicity in derived.patterns("".join(letters), free))
            expected = sp.Mul(*(2 * derived.K if derived_flows.INDEX_RANGES[letter] == "J" else derived.K
                                for letter in letters))
            assert sp.expand(total - expected) == 0, (target, summed)


@pytest.mark.slow
def test_the_reduced_trajectory_follows_the_full_integration():
    """K = 3 from a point of the ansatz through the plateau: the reduction's Kvaerno5 and the full
    flows' Tsit5, each at tight tolerances, agree to 1e-7 in every overlap and ε_g."""
    setting = nndyn.Setting(K=3, M=3, lr=1.0)
    start = SymmetricState(0.5, 0.05, 0.02, 0.0, 1.0)
    t = np.linspace(0, 300, 31)
    reduced = symmetric.integrate(setting, start, t)
    full = nndyn.integrate(setting, start.expand(3), t, rtol=1e-11, atol=1e-13)
    Q, R = np.asarray(full.Q), np.asarray(full.R)
    np.testing.assert_allclose(reduced.Q, Q[:, 0, 0], atol=1e-7)
    np.testing.assert_allclose(reduced.C, Q[:, 0, 1], atol=1e-7)
    np.testing.assert_allclose(reduced.R, R[:, 0, 0], atol=1e-7)
    np.testing.assert_allclose(reduced.S, R[:, 0, 1], atol=1e-7)
    np.testing.assert_allclose(reduced.eg, np.asarray(full.eg), atol=1e-7, rtol=1e-6)
    assert reduced.eg[-1] < 1e-3 < reduced.eg[10]  # it left the plateau within the span


@pytest.mark.slow
@pytest.mark.parametrize("K", [2, 4])
def test_eta_max_and_the_plateau_agree_with_the_full_flows(K):
    """η_max of the reduction equals the full one (the ansatz's mode is the first to go), and the
    plateau's unstable eigenvalue is the full plateau's, of multiplicity (K − 1)² there."""
    setting = nndyn.Setting(K=K, M=K, lr=0.5)
    assert learning_rate_threshold(setting, symmetric=True, relative_tolerance=1e-10) == pytest.approx(
        learning_rate_threshold(setting, relative_tolerance=1e-10), rel=1e-9)
    late = symmetric.integrate(setting, SymmetricState(0.5, 0.0, 0.0, 0.0, 1.0), np.array([0.0, 200.0]))
    plateau = nndyn.fixed_point(setting, late.state(-1))
    assert plateau.kind == "saddle" and plateau.unstable_directions == 1
    assert float(plateau.state.R) == pytest.approx(float(plateau.state.S), abs=1e-12)
    full = nndyn.fixed_point(setting, plateau.state.expand(K))
    assert full.unstable_directions == (K - 1) ** 2
    assert full.eigenvalues.real[0] == pytest.approx(plateau.eigenvalues.real[0], rel=1e-8)
    assert full.eg == pytest.approx(plateau.eg, rel=1e-12)


@pytest.mark.parametrize("K", [10, 1000, 10_000])
def test_saad_and_sollas_plateau_at_large_width(K):
    """η → 0 (a huge batch): Q = C = 1/(2K−1), R = S = 1/√(K(2K−1)) is a fixed point of the
    reduction with ε_g = (K/π)(π/6 − K arcsin(1/(2K))) at any K; the flows vanish there to the
    round-off of their O(1) terms."""
    setting = nndyn.Setting(K=K, M=K, lr=0.5 / K, batch=10**12)
    q, r = 1 / (2 * K - 1), 1 / np.sqrt(K * (2 * K - 1))
    state = SymmetricState(q, q, r, r, 1.0)
    assert max(abs(float(value)) for value in symmetric.flows(setting, state)) < 1e-14
    eg = K / np.pi * (np.pi / 6 - K * np.arcsin(1 / (2 * K)))
    assert float(symmetric.generalisation_error(setting, state)) == pytest.approx(eg, rel=1e-9)


@pytest.mark.slow
def test_at_ten_thousand_units_the_escape_grows_at_the_unstable_eigenvalue():
    """K = 10⁴, η = 0.1/K: started on the plateau's unstable eigenvector at 1e-7, the integrated
    specialisation R − S grows at the Jacobian's λ_u (over one e-folding, to 1 %); η_max·K is
    near its large-K value (π√3 to 1e-4 at this K, docs/fixed-points.md)."""
    K = 10_000
    setting = nndyn.Setting(K=K, M=K, lr=0.1 / K)
    late = symmetric.integrate(setting, SymmetricState(0.5, 0.0, 0.0, 0.0, 1.0), np.array([0.0, 300 * K / 0.1]))
    plateau = nndyn.fixed_point(setting, late.state(-1), tolerance=1e-14 * setting.lr, eigen_tolerance=1e-15)
    growth_rate = float(plateau.eigenvalues.real[0])
    assert plateau.kind == "saddle" and growth_rate > 0
    direction = np.real(plateau.eigenvectors[:, 0])
    x0 = np.array([plateau.state.Q, plateau.state.C, plateau.state.R, plateau.state.S])
    x0 = x0 + 1e-7 * direction / np.max(np.abs(direction))
    run = symmetric.integrate(setting, SymmetricState(*x0, 1.0), np.array([0.0, 1 / growth_rate]))
    e_foldings = np.log(abs(run.R[-1] - run.S[-1]) / abs(x0[2] - x0[3]))
    assert e_foldings == pytest.approx(1.0, rel=0.01)
    assert K * learning_rate_threshold(setting, symmetric=True, relative_tolerance=1e-10) == pytest.approx(
        np.pi * np.sqrt(3), rel=1e-4)


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match="K = M"):
        symmetric.flows(nndyn.Setting(K=3, M=2, lr=0.5), STATE)
    with pytest.raises(ValueError, match="feedback"):
        symmetric.arguments(nndyn.Setting(K=2, M=2, lr=0.5, feedback="alignment"))
    with pytest.raises(ValueError, match="K ≥ 2"):
        symmetric.flows(nndyn.Setting(K=1, M=1, lr=0.5), STATE)
    with pytest.raises(ValueError, match="Q_jk equal"):
        off = STATE.expand(3)
        SymmetricState.of(nndyn.OrderParameters(off.Q.at[0, 1].set(0.3).at[1, 0].set(0.3), off.R, off.T, off.v,
                                                off.v_star))
    with pytest.raises(ValueError, match="solver"):
        symmetric.integrate(nndyn.Setting(K=2, M=2, lr=0.5), STATE, np.array([0.0, 1.0]), solver="Euler")
    with pytest.raises(ValueError, match="T = I and v"):
        learning_rate_threshold(nndyn.Setting(K=2, M=2, lr=0.5), T=np.eye(2), symmetric=True)
    assert SymmetricState.of(STATE.expand(4)) == pytest.approx(tuple(STATE))
