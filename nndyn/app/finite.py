"""`nndyn reproduce fluctuations`: SGD at finite N beside what predicts its spread
(docs/fluctuations.md). Beside a panel's seeds and its linear-noise band (`run_panel` of a
panel with `band`): the SDE's paths from each seed's start (`nndyn.sample_paths`); and plateau
escape times against N (`Escapes`) from SGD, the SDE and the saddle's leading-order law
t_esc = c + ln N/(2λ_u), its slope from the saddle's eigenvalue and c fitted to the SDE's
medians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nndyn.app.experiments import Escapes, Experiment, PanelResult
from nndyn.app.progress import Silent
from nndyn.core.fixed_points import FixedPoint, fixed_point
from nndyn.core.integrate import integrate
from nndyn.core.sde import escape_times, sample_paths
from nndyn.core.simulate import simulate
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory

#: Saves per unit of time of the escape runs (escape times are interpolated between them).
SAVES_PER_TIME = 2


def quartiles_of(times: np.ndarray) -> np.ndarray:
    """The lower quartile, median and upper quartile (3, ...) of escape times (..., paths), each a
    sample's value (the inverted CDF: no interpolation, so inf, a path that never escaped, is
    never averaged with a time)."""
    return np.quantile(times, [0.25, 0.5, 0.75], axis=-1, method="inverted_cdf")


@dataclass(frozen=True)
class EscapeResult:
    """Escape times of `Escapes` (`escape_times`, inf where a path stayed): `sgd` and `sde`
    (len(sizes), paths); the `plateau` the ODE stays on (a saddle: `FixedPoint`) and the escape
    `level` (half its ε_g); `ode_escaped`, whether the ODE left it by t_max."""

    escapes: Escapes
    sgd: np.ndarray
    sde: np.ndarray
    plateau: FixedPoint
    level: float
    ode_escaped: bool

    @property
    def slope(self) -> float:
        """The law's slope in ln N, 1/(2λ_u)."""
        return 1.0 / (2.0 * self.plateau.escape_rate)

    @property
    def intercept(self) -> float:
        """c of the law c + ln N/(2λ_u), fitted (least squares) to the SDE's medians where more
        than half its paths escaped (NaN where at no N)."""
        residuals = quartiles_of(self.sde)[1] - self.slope * np.log(np.asarray(self.escapes.sizes, dtype=float))
        finite = residuals[np.isfinite(residuals)]
        return float(np.mean(finite)) if finite.size else float("nan")

    def law(self, N) -> np.ndarray:
        """The leading-order escape time at N, c + ln N/(2λ_u)."""
        return self.intercept + self.slope * np.log(np.asarray(N, dtype=float))

    def summary(self) -> dict:
        """Per N (lists over `sizes`): the medians and quartiles of SGD's and the SDE's escape
        times (`quartiles_of`; inf, shown as null, where fewer than that share escaped), the
        shares that escaped, a two-sample KS test's p-value of SGD against the SDE, and the law's
        values; λ_u, the law's slope and fitted intercept, the level and whether the ODE escaped."""
        from scipy.stats import ks_2samp

        summary: dict = {"N": list(self.escapes.sizes), "paths": self.escapes.paths}
        for name, times in (("sgd", self.sgd), ("sde", self.sde)):
            quartiles = quartiles_of(times)
            summary[f"{name}_median"] = quartiles[1].tolist()
            summary[f"{name}_quartiles"] = quartiles[[0, 2]].T.tolist()
            summary[f"{name}_escaped"] = np.mean(np.isfinite(times), axis=1).tolist()
        tests = [ks_2samp(a, b) for a, b in zip(self.sgd, self.sde)]
        summary["ks_pvalue_sgd_vs_sde"] = [float(test.pvalue) for test in tests]  # pyright: ignore[reportAttributeAccessIssue]
        return {**summary, "law": self.law(self.escapes.sizes).tolist(), "escape_rate": self.plateau.escape_rate,
                "law_slope": self.slope, "law_intercept": self.intercept, "plateau_eg": self.plateau.eg,
                "level": self.level, "ode_escaped": self.ode_escaped}


@dataclass(frozen=True)
class FiniteResult:
    """What `run_finite` adds to a panel's `PanelResult` (whose `spread` is the linear-noise band):
    `paths`, the SDE from each seed's start (seed axis first); `escapes`."""

    paths: Trajectory
    escapes: EscapeResult

    def summary(self, result: PanelResult) -> dict:
        """The spread of ε_g over seeds of SGD and of the SDE beside the predicted one (the
        panel's `result.spread`), each the root mean square over a window of times of the
        standard deviation over seeds (one time's, of a few seeds, is noisy): "early", t in
        [t_max/10, t_max/2] (fig1's K = 6 panel: on the plateau), and "late", the last tenth
        (where seeds leave it, unequally); the means of ε_g there; and `escapes`' summary."""
        spread, sim = result.spread, result.sim
        assert spread is not None and spread.ode is not None, "the panel has a band"
        t = np.asarray(spread.t)
        series = {"eg_std_predicted": spread.eg_var, "eg_std_sgd": np.var(np.asarray(sim.eg), axis=0, ddof=1),
                  "eg_std_sde": np.var(np.asarray(self.paths.eg), axis=0, ddof=1)}
        means = {"eg_mean_ode": np.asarray(spread.ode.eg), "eg_mean_sgd": np.asarray(sim.eg).mean(axis=0),
                 "eg_mean_sde": np.asarray(self.paths.eg).mean(axis=0)}
        windows = {}
        for name, (low, high) in (("early", (0.1, 0.5)), ("late", (0.9, 1.0))):
            inside = (t >= t[0] + low * (t[-1] - t[0])) & (t <= t[0] + high * (t[-1] - t[0]))
            windows[name] = {"t": [float(t[inside][0]), float(t[inside][-1])],
                             **{key: float(np.sqrt(np.mean(value[inside]))) for key, value in series.items()},
                             **{key: float(np.mean(value[inside])) for key, value in means.items()}}
        return {"spread": windows, "escapes": self.escapes.summary()}


def run_finite(experiment: Experiment, result: PanelResult, report=None) -> FiniteResult:
    """The finite-N part of `experiment` (layout "fluctuations") beside its panel's `result` (a
    panel with a band): the SDE's paths from each seed's start, and its `escapes`
    (`run_escapes`). `report` is told each stage (`nndyn.app.progress.Line`)."""
    if experiment.escapes is None:
        raise ValueError(f"{experiment.name} has no escapes to run (layout {experiment.layout!r})")
    report = report or Silent()
    panel, sim = result.panel, result.sim
    report.stage("the SDE from each seed's start")
    paths = sample_paths(panel.setting, sim.initial_state(), np.asarray(sim.t), panel.simulation.N,
                         seeds=panel.simulation.seeds)
    escapes = run_escapes(experiment.escapes, report)
    report.finish()
    return FiniteResult(paths, escapes)


def run_escapes(escapes: Escapes, report=None) -> EscapeResult:
    """SGD and the SDE from `escapes`' orthogonal start at each N, and their escape times; the
    plateau the ODE from there settles on (ValueError where that is no saddle)."""
    report = report or Silent()
    setting, scale, K, M = escapes.setting, escapes.init_scale, escapes.setting.K, escapes.setting.M
    t = np.linspace(0.0, escapes.t_max, int(round(escapes.t_max * SAVES_PER_TIME)) + 1)
    report.stage("the plateau the ODE stays on")
    start = OrderParameters(scale**2 * np.eye(K), np.zeros((K, M)), np.eye(M), np.ones(K), np.ones(M))
    ode = integrate(setting, start, t)
    plateau = fixed_point(setting, ode.state_at(-1))
    if plateau.kind != "saddle":
        raise ValueError(f"the ODE from orthogonal students settles on a {plateau.kind} point, not a plateau")
    level = plateau.eg / 2
    rng = np.random.default_rng(0)
    sgd, sde = [], []
    for index, N in enumerate(escapes.sizes):
        report.stage(f"escapes at N = {N}: SGD, then the SDE")
        basis = np.linalg.qr(rng.standard_normal((N, K + M)))[0].T * np.sqrt(N)  # orthogonal, |w|² = N
        W0 = np.broadcast_to(scale * basis[M:], (escapes.paths, K, N))
        run = simulate(setting, N, escapes.t_max, seeds=escapes.paths, W0=W0, W_teacher=basis[:M],
                       save_every=max(1, N // SAVES_PER_TIME))
        sgd.append(escape_times(run, level))
        seeds = list(range(index * escapes.paths, (index + 1) * escapes.paths))  # Brownian paths of their own
        sde.append(escape_times(sample_paths(setting, run.initial_state(), run.t, N, seeds=seeds), level))
    return EscapeResult(escapes, np.array(sgd), np.array(sde), plateau, level,
                        bool(np.isfinite(escape_times(ode, level))))
