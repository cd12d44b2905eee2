"""The two unspecialised plateaus and η_c (nndyn.core.plateaus) against the integrated flows:
learning from distinct students sits on the "distinct" plateau and leaves it at its λ_u, the
"identical" one is left at its own λ_u, and above η_c integrated students stop specialising."""

import numpy as np
import pytest

import nndyn
from nndyn import SymmetricState
from nndyn.core import symmetric
from nndyn.core.plateaus import plateau, plateau_threshold, plateaus


def _entries(state):
    """(Q_11, Q_12, R_11, R_12) of a full state."""
    return np.array([state.Q[0, 0], state.Q[0, 1], state.R[0, 0], state.R[0, 1]], dtype=float)


def _unspecialised(state):
    """(Q_11, Q_12, the mean of R) of a full state: the coordinates that specialisation, growing
    on the plateau, leaves alone to first order."""
    return np.array([state.Q[0, 0], state.Q[0, 1], np.mean(state.R)], dtype=float)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_identical_plateau_has_one_student_vector_the_distinct_one_distinct_students():
    """K = 2, η = 0.5, B = 1: both are unspecialised (R = S); the identical one has Q = C, the
    distinct one Q > C with the (K − 1)² unstable directions of specialisation only, while the
    identical one has more (directions that separate its students); at B → ∞ (no η² terms)
    the two are one point."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    found = plateaus(setting, full=True)
    identical, distinct = (_entries(found[name].state) for name in ("identical", "distinct"))
    assert identical[0] == pytest.approx(identical[1], abs=1e-10) and identical[2] == pytest.approx(identical[3],
                                                                                                       abs=1e-10)
    assert distinct[2] == pytest.approx(distinct[3], abs=1e-10) and distinct[0] - distinct[1] > 0.01
    assert found["distinct"].unstable_directions == 1
    assert found["identical"].unstable_directions > 1
    gradient_flow = plateaus(nndyn.Setting(K=2, M=2, lr=0.5, batch=10**9))
    assert np.allclose(np.array(gradient_flow["identical"].state), np.array(gradient_flow["distinct"].state),
                       atol=1e-6)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_identical_plateau_is_left_at_its_escape_rate():
    """K = 2, η = 0.5: started at the identical plateau plus 1e-7 along its most unstable
    direction, the integrated deviation grows by one e-folding in 1/λ_u (to 1 %)."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    point = plateau(setting, "identical", full=True)
    growth = point.escape_rate
    direction = np.real(point.eigenvectors[:, 0])
    direction = 1e-7 * direction / np.max(np.abs(direction))
    Q = np.array(point.state.Q, dtype=float)
    Q[np.triu_indices(2)] += direction[:3]
    Q = np.triu(Q) + np.triu(Q, 1).T
    R = np.array(point.state.R, dtype=float) + direction[3:7].reshape(2, 2)
    start = nndyn.OrderParameters(Q, R, np.eye(2), np.ones(2), np.ones(2))
    run = nndyn.integrate(setting, start, np.array([0.0, 1 / growth]), rtol=1e-12, atol=1e-14)
    end = run.state_at(-1)
    deviation = np.max(np.abs(np.concatenate([np.ravel(end.Q - point.state.Q), np.ravel(end.R - point.state.R)])))
    assert np.log(deviation / 1e-7) == pytest.approx(1.0, rel=0.01)


@pytest.mark.slow
def test_learning_visits_the_distinct_plateau_and_escapes_at_its_rate():
    """K = 4, η = 0.5, B = 1, from students of norm 1 and of norm 0.1 with specialisation
    δ₀ = 1e-6 and 1e-8: the integrated flows sit on the distinct plateau (Q, C, the mean R to 2e-3),
    not on the identical one (C 0.154 there against 0.117), and the escape (ε_g below half
    the plateau's) comes ln 10/λ_u later per decade of δ₀ (to 1 %), λ_u the distinct
    plateau's, about half the identical one's."""
    K = 4
    setting = nndyn.Setting(K=K, M=K, lr=0.5)
    found = plateaus(setting, full=True)
    distinct = found["distinct"]
    per_decade = np.log(10) / distinct.escape_rate
    assert abs(np.log(10) / found["identical"].escape_rate / per_decade - 1) > 0.3
    t = np.linspace(0, 2000, 2001)
    for norm in (1.0, 0.1):
        escapes = []
        for asymmetry in (1e-6, 1e-8):
            start = nndyn.OrderParameters(norm**2 * np.eye(K), asymmetry * (np.eye(K) - 1 / K), np.eye(K),
                                          np.ones(K), np.ones(K))
            run = nndyn.integrate(setting, start, t)
            eg = np.asarray(run.eg)
            escape = int(np.argmax((eg < distinct.eg / 2) & (t > 10)))
            assert escape > 0
            escapes.append(t[escape])
            on_plateau = _unspecialised(run.state_at(3 * escape // 4))
            assert on_plateau == pytest.approx(_unspecialised(distinct.state), abs=2e-3)
        assert (escapes[1] - escapes[0]) / 2 == pytest.approx(per_decade, rel=0.01)


@pytest.mark.slow
def test_above_eta_c_students_on_the_plateau_stop_specialising():
    """K = 10 (the reduction): η_c K is 3.84 (docs/fixed-points.md); started on the distinct
    plateau with R − S = 1e-6, the integrated specialisation grows at 0.95 η_c and decays at
    1.05 η_c, at the rate the plateau's eigenvalue gives (to 5 %)."""
    K = 10
    eta_c = plateau_threshold(nndyn.Setting(K=K, M=K, lr=0.1), relative_tolerance=1e-8)
    assert eta_c is not None and 3.5 < K * eta_c < 4.2
    for share, grows in ((0.95, True), (1.05, False)):
        setting = nndyn.Setting(K=K, M=K, lr=share * eta_c)
        point = plateau(setting, "distinct")
        state = point.state
        rate = point.escape_rate
        assert (rate > 0) == grows
        span = 1 / abs(rate)
        start = SymmetricState(state.Q, state.C, state.R + 1e-6, state.S, state.v)
        run = symmetric.integrate(setting, start, np.array([0.0, span]))
        change = np.log(abs(run.R[-1] - run.S[-1]) / 1e-6)
        assert change == pytest.approx(1.0 if grows else -1.0, rel=0.05)


def test_bad_requests_are_one_line():
    with pytest.raises(ValueError, match="name must be one of"):
        plateau(nndyn.Setting(K=2, M=2, lr=0.5), "specialised")
    with pytest.raises(ValueError, match="K = M"):
        plateaus(nndyn.Setting(K=3, M=2, lr=0.5))
