"""Continual learning: protocols of phases on several teachers, ODE and SGD."""

import dataclasses

import numpy as np
import pytest

import nndyn
from nndyn.core.continual import masked_readout, teachers_weights
from nndyn.core.state import measure


def protocol(similarity=0.5, heads="single", readout=1.0, **second):
    return nndyn.Protocol(nndyn.Teachers(count=2, feature_similarity=similarity, readout_similarity=readout,
                                         heads=heads),
                          (nndyn.Phase(teacher=0, t=4), nndyn.Phase(teacher=1, t=4, **second)))


SETTING = nndyn.Setting(K=2, M=1, lr=0.8, train_second_layer=True)


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_one_phase_is_the_plain_model():
    single = nndyn.Protocol(nndyn.Teachers(count=1), (nndyn.Phase(teacher=0, t=5),))
    setting = nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer=True)
    sim = nndyn.simulate_protocol(setting, single, N=200, seeds=2)
    plain = nndyn.simulate(setting, N=200, t_max=5, seeds=2)
    np.testing.assert_allclose(sim.Q, plain.Q, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sim.heads[:, :, 0], plain.v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sim.eg_teacher[..., 0], plain.eg, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sim.eg, plain.eg, rtol=1e-12, atol=1e-14)  # one type: eg, v are the active ones
    np.testing.assert_allclose(sim.v, plain.v, rtol=1e-12, atol=1e-12)
    init = sim.initial_state()
    ode = nndyn.integrate_protocol(setting, single, init, sim.t)
    direct = nndyn.integrate(setting, plain.initial_state(), plain.t)
    np.testing.assert_allclose(ode.eg_teacher[..., 0], direct.eg, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ode.eg, direct.eg, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ode.R, direct.R, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ode.v, direct.v, rtol=1e-7, atol=1e-10)
    with pytest.warns(DeprecationWarning, match="initial_state"):  # the former (state, heads) pair
        state, heads = sim.initial_state()
    np.testing.assert_array_equal(heads, state.heads)
    with pytest.warns(DeprecationWarning, match="Trajectory"):
        assert nndyn.ContinualTrajectory is nndyn.Trajectory
    with pytest.warns(DeprecationWarning, match="flow_parameters"):
        assert single.rates(setting, single.phases[0]) == single.flow_parameters(setting, single.phases[0])


def test_teachers_have_the_stated_similarity():
    W, v = teachers_weights(SETTING.replace(M=3), nndyn.Teachers(count=3, feature_similarity=0.6,
                                                                 readout_similarity=0.2), N=20000)
    T = np.asarray(measure(W.reshape(-1, 20000), W.reshape(-1, 20000))[2])
    cross = T[:3, 3:6]  # teacher 0 against teacher 1, unit by unit
    np.testing.assert_allclose(np.diag(cross), 0.6, atol=5 / np.sqrt(20000))
    assert np.asarray(v).shape == (3, 3) and np.all(np.asarray(v)[0] == 1)


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_per_teacher_error_is_the_plain_error_with_that_teachers_readout():
    sim = nndyn.simulate_protocol(SETTING, protocol(readout=-1.0), N=200, seeds=2)  # M = 1: γ_r = ±1
    kernels = SETTING.kernels
    for teacher in range(2):
        units = slice(teacher, teacher + 1)
        for j in (0, -1):
            args = SETTING.ode_args(sim.T[0][units, units], sim.v_star[0][teacher])
            eg = kernels.eg({"Q": sim.Q[0, j], "R": sim.R[0, j][:, units], "v": sim.heads[0, j, 0]}, args)
            assert float(eg) == pytest.approx(float(sim.eg_teacher[0, j, teacher]), rel=1e-12)


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_identical_teachers_forget_nothing():
    same = protocol(similarity=1.0)
    sim = nndyn.simulate_protocol(SETTING, same, N=200, seeds=2)
    init = sim.initial_state()
    ode = nndyn.integrate_protocol(SETTING, same, init, sim.t)
    np.testing.assert_allclose(ode.eg_teacher[..., 0], ode.eg_teacher[..., 1], rtol=1e-10)
    assert np.all(ode.metrics(same)["forgetting"][:, 0] <= 1e-12)


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_multi_heads_train_only_the_active_head():
    multi = protocol(heads="multi")
    sim = nndyn.simulate_protocol(SETTING, multi, N=200, seeds=2)
    heads = np.asarray(sim.heads)  # (seeds, times, 2, K)
    first = np.asarray(sim.t) <= 4
    assert np.all(heads[:, first, 1] == heads[:, :1, 1]), "head 1 rests while teacher 0 is trained"
    assert np.all(heads[:, ~first, 0] == heads[:, first, 0][:, -1:]), "head 0 rests afterwards"
    assert np.all(np.asarray(sim.phase)[:, 1:] == np.where(np.asarray(sim.t)[1:] <= 4, 0, 1))


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_threshold_switch_and_one_that_is_never_reached():
    reachable = nndyn.Protocol(nndyn.Teachers(count=2), (nndyn.Phase(teacher=0, t=20, threshold=0.05),
                                                         nndyn.Phase(teacher=1, t=4)))
    sim = nndyn.simulate_protocol(SETTING, reachable, N=200, seeds=2)
    init = sim.initial_state()
    ode = nndyn.integrate_protocol(SETTING, reachable, init, sim.t)
    for run in (sim, ode):
        assert np.all(np.asarray(run.reached))
        switch = np.asarray(run.starts)[:, 1]
        assert np.all(switch < 20)
        for seed, time in enumerate(switch):
            index = int(np.searchsorted(np.asarray(run.t), time))
            assert run.eg_teacher[seed, index, 0] < 0.05 <= run.eg_teacher[seed, index - 1, 0]
    never = nndyn.Protocol(nndyn.Teachers(count=2), (nndyn.Phase(teacher=0, t=3, threshold=1e-9),
                                                     nndyn.Phase(teacher=1, t=3)))
    sim = nndyn.simulate_protocol(SETTING, never, N=200, seeds=2)
    assert not np.any(np.asarray(sim.reached)[:, 0]) and np.all(np.asarray(sim.starts)[:, 1] == 3)


def test_bad_protocols_get_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"^phases\[1\].teacher = 2 names no teacher \(there are 2: 0 to 1\)$"):
        nndyn.Protocol(nndyn.Teachers(count=2), (nndyn.Phase(teacher=0, t=1), nndyn.Phase(teacher=2, t=1)))
    with pytest.raises(ValueError, match=r"^feature_similarity must be a finite number in \[-1, 1\], got 1.5$"):
        nndyn.Teachers(feature_similarity=1.5)
    with pytest.raises(ValueError, match=r"^heads must be one of"):
        nndyn.Teachers(heads="two")
    with pytest.raises(ValueError, match=r"^phases\[0\].t = 0.5 is not a whole number of save intervals"):
        nndyn.simulate_protocol(SETTING, nndyn.Protocol(nndyn.Teachers(), (nndyn.Phase(teacher=0, t=0.5),)),
                                N=100, seeds=2)


def test_masked_readout_is_the_active_teachers():
    v_star = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(masked_readout(v_star, 1), [0, 0, 2, 3, 0, 0])


def test_a_run_config_with_a_protocol(tmp_path):
    from nndyn.app.config import ConfigError, read_config

    base = 'name = "cl"\nK = 2\nM = 1\nlr = 0.5\nN = 100\nseeds = 2\ntrain_second_layer = true\n'
    (tmp_path / "ok.toml").write_text(base + '[teachers]\ncount = 2\nfeature_similarity = 0.5\nheads = "multi"\n'
                                      "[[phases]]\nteacher = 0\nt = 2\n[[phases]]\nteacher = 1\nt = 2\nlr = 0.25\n")
    experiment = read_config(tmp_path / "ok.toml")
    panel = experiment.panels[0]
    assert panel.protocol.phases[1].lr == 0.25 and panel.simulation.t_max == 4
    (tmp_path / "bad.toml").write_text(base + "[teachers]\ncount = 2\nreadout_similarity = -2\n"
                                       "[[phases]]\nteacher = 3\nt = 2\n[[phases]]\nteacher = 0\ncolour = 1\n")
    with pytest.raises(ConfigError) as refused:
        read_config(tmp_path / "bad.toml")
    problems = [problem.split(": ", 1)[1] for problem in refused.value.problems]
    assert problems == ["[teachers] readout_similarity must be a finite number in [-1, 1], got -2",
                        "[[phases]] 1: unknown field 'colour' (known: teacher, t, threshold, lr, lr_v, sigma, batch, "
                        "anneal, frozen)", "[[phases]] 1: missing field 't'"]


@pytest.mark.slow  # SGD and the ODE through a protocol
def test_frozen_first_layer_and_annealing():
    frozen = protocol(frozen=True)
    sim = nndyn.simulate_protocol(SETTING, frozen, N=200, seeds=2)
    later = np.asarray(sim.t) >= 4
    frozen = np.asarray(sim.Q)[:, later]
    np.testing.assert_array_equal(frozen, frozen[:, :1].repeat(later.sum(), 1))
    annealed = dataclasses.replace(protocol(anneal=0.5))
    init = nndyn.simulate_protocol(SETTING, annealed, N=200, seeds=2).initial_state()
    slow = nndyn.integrate_protocol(SETTING, annealed, init, sim.t)
    fast = nndyn.integrate_protocol(SETTING, protocol(), init, sim.t)
    moved = [np.abs(np.asarray(run.R)[:, -1] - np.asarray(run.R)[:, 4]).sum() for run in (slow, fast)]
    assert moved[0] < 0.5 * moved[1], "annealing η slows the second phase"


def test_phases_switch_on_saved_times_or_are_refused():
    """A phase whose length is not a whole number of save intervals would switch late (at 2.1 for
    t = 2 on a spacing of 0.3): refused, as are a time grid shorter than the protocol and heads
    of the wrong shape."""
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    protocol = nndyn.Protocol(nndyn.Teachers(count=2), (nndyn.Phase(teacher=0, t=2), nndyn.Phase(teacher=1, t=2)))
    W, W_star = np.eye(2, 8), np.eye(4, 8)
    init = nndyn.OrderParameters.from_weights(W, W_star, v_star=np.ones(4))
    with pytest.raises(ValueError, match=r"phases\[0\].t = 2 is not a whole number of the spacing of t \(0.3\)"):
        nndyn.integrate_protocol(setting, protocol, init, np.arange(0, 4.2, 0.3))
    with pytest.raises(ValueError, match="before the protocol does"):
        nndyn.integrate_protocol(setting, protocol, init, np.arange(0, 3.5, 0.5))
    with pytest.raises(ValueError, match="heads must have shape"):
        nndyn.integrate_protocol(setting, protocol, init, np.arange(0, 4.5, 0.5), heads=np.ones((3, 2)))
    run = nndyn.integrate_protocol(setting, protocol, init, np.arange(0, 4.5, 0.5))
    assert list(np.asarray(run.phase)) == [0, 0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("M, similarity", [(2, 0.0), (3, 0.5), (4, -0.3), (1, 1.0), (1, -1.0)])
def test_readouts_have_the_similarity_they_are_given(M, similarity):
    """v*_t is v*_0 rotated at fixed norm: its cosine with v*_0 is γ_r exactly and its norm is
    v*_0's, at any M (a Gaussian mixture gave M = 1, γ_r = 0 a cosine of 1)."""
    from nndyn.core.continual import readout_cosines

    teachers = nndyn.Teachers(count=3, readout_similarity=similarity)
    _, v_star = teachers_weights(nndyn.Setting(K=2, M=M, lr=0.5), teachers, N=20)
    np.testing.assert_allclose(readout_cosines(v_star), [1.0, similarity, similarity], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(v_star), axis=-1), np.sqrt(M), rtol=1e-14)


def test_a_readout_similarity_one_unit_cannot_have_is_refused():
    with pytest.raises(nndyn.core.schema.ParameterError, match="readout_similarity = 0 cannot be realised"):
        teachers_weights(nndyn.Setting(K=2, M=1, lr=0.5), nndyn.Teachers(readout_similarity=0.0), N=20)


@pytest.mark.slow  # SGD and the ODE through three protocols
def test_separate_heads_forget_most_at_intermediate_similarity():
    """Lee et al. (2021)'s set-up (a head per task, initial weights 0.001; erf, K = 2, M = 1,
    η = 1, 50 time units per task, N = 784): forgetting of task 0 is not monotonic in the feature
    similarity: at γ_f = 0.3 it exceeds that at γ_f = 0 and at γ_f = 1, by more than 4 standard
    errors of the SGD mean, in SGD and in the ODE started from SGD's initial states alike."""
    setting = nndyn.Setting(K=2, M=1, lr=1.0, train_second_layer=True)
    forgetting = {}
    for similarity in (0.0, 0.3, 1.0):
        protocol = nndyn.Protocol(nndyn.Teachers(count=2, feature_similarity=similarity, heads="multi"),
                                  (nndyn.Phase(teacher=0, t=50.0), nndyn.Phase(teacher=1, t=50.0)))
        sim = nndyn.simulate_protocol(setting, protocol, N=784, seeds=4, init_scale=1e-3, t_max=100.0)
        init = sim.initial_state()
        ode = nndyn.integrate_protocol(setting, protocol, init, sim.t)
        forgetting[similarity] = (sim.metrics(protocol)["forgetting"][:, 0], ode.metrics(protocol)["forgetting"][:, 0])
    middle_sim, middle_ode = forgetting[0.3]
    for similarity in (0.0, 1.0):
        sim, ode = forgetting[similarity]
        error = np.hypot(np.std(middle_sim, ddof=1), np.std(sim, ddof=1)) / np.sqrt(len(sim))
        assert np.mean(middle_sim) - np.mean(sim) > 4 * error
        assert np.mean(middle_ode) - np.mean(ode) > 4 * error
