"""The SDE of SGD at finite N (`nndyn.sample_paths`) against SGD where the linear noise cannot
follow it: the escape from a plateau entered exactly on its symmetric subspace, which the ODE
never leaves (its escape is the noise's alone).

Statistics: at each N, the escape times of 40 SGD seeds and 40 SDE paths (independent Brownian
paths, each from its seed's initial order parameters) are compared by a two-sample
Kolmogorov–Smirnov test at level 1e-3/2 (two N, Bonferroni); paths that have not escaped by
t_max count as escaping at t_max (censored alike on both sides, which the KS test allows).
"""

import numpy as np
import pytest
from scipy.stats import ks_2samp

import nndyn

pytestmark = pytest.mark.slow  # SGD and the SDE through a plateau, 40 paths each at two N

FAMILY_LEVEL = 1e-3
SEEDS = 40


def symmetric_start(setting, N, seeds, seed, q=0.25):
    """A teacher (M, N) and students (seeds, K, N) orthogonal to it and to each other, |w|² = qN:
    every seed starts at Q = q I, R = 0, where the flows keep the students unspecialised."""
    rng = np.random.default_rng(seed)
    W_teacher = rng.standard_normal((setting.M, N))
    W0 = np.empty((seeds, setting.K, N))
    for s in range(seeds):
        basis, _ = np.linalg.qr(np.concatenate([W_teacher, rng.standard_normal((setting.K, N))]).T)
        W0[s] = basis[:, setting.M:].T * np.sqrt(N * q)
    return W_teacher, W0


def test_the_sde_escapes_a_plateau_as_sgd_does():
    setting = nndyn.Setting(activation="erf", K=2, M=2, lr=1.0)
    level = 0.01  # half the plateaus' ε_g (0.0212 and 0.0207, nndyn.plateaus), far above the learned one
    for N, t_max in ((100, 140.0), (200, 140.0)):
        W_teacher, W0 = symmetric_start(setting, N, SEEDS, seed=N)
        sim = nndyn.simulate(setting, N, t_max, seeds=SEEDS, W0=W0, W_teacher=W_teacher, save_every=N // 2)
        paths = nndyn.sample_paths(setting, sim.initial_state(), sim.t, N, seeds=range(1000, 1000 + SEEDS))
        ode = nndyn.integrate(setting, sim.initial_state(), sim.t)
        assert np.all(np.isinf(nndyn.escape_times(ode, level))), "the ODE must stay on the plateau"
        sgd, sde = (np.minimum(nndyn.escape_times(run, level), t_max) for run in (sim, paths))
        assert np.mean(sgd < t_max) > 0.5, "most SGD seeds must escape within the window"
        test = ks_2samp(sgd, sde)
        assert test.pvalue > FAMILY_LEVEL / 2, (f"N = {N}: SGD's escape times (median {np.median(sgd):.1f}) and the "
                                                f"SDE's ({np.median(sde):.1f}) differ, KS p = {test.pvalue:.2g}")


def test_sample_paths_refuse_bad_input_with_one_line():
    setting = nndyn.Setting(activation="erf", K=2, M=2, lr=1.0)
    start = nndyn.OrderParameters(Q=0.25 * np.eye(2), R=np.zeros((2, 2)), T=np.eye(2), v=np.ones(2), v_star=np.ones(2))
    with pytest.raises(ValueError, match="seeds must be a count"):
        nndyn.sample_paths(setting, start, [0.0, 1.0], 100, seeds=0)
    with pytest.raises(ValueError, match="^N must be an integer"):
        nndyn.sample_paths(setting, start, [0.0, 1.0], 0.5)
