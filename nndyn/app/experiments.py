"""The blog's figures and user runs as experiments: panels of simulation against ODE."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from nndyn.app.progress import Silent
from nndyn.core import spectrum
from nndyn.core.compare import Agreement, Comparison, compare, verdict
from nndyn.core.continual import (
    Phase,
    Protocol,
    Teachers,
    integrate_protocol,
    readout_cosines,
    simulate_protocol,
)
from nndyn.core.diffusion import SOBOL_POINTS
from nndyn.core.fluctuations import Fluctuations, fluctuations, initial_covariance, mean_state
from nndyn.core.integrate import integrate
from nndyn.core.setting import Setting
from nndyn.core.simulate import Simulation, simulate
from nndyn.core.solver import ODEOptions
from nndyn.core.trajectory import Trajectory

#: Sobol' points of the rule a band's diffusion matrix is taken on (`nndyn.fluctuations`'
#: `points`): about 1 % in D, 8× cheaper than the default 2^15.
BAND_POINTS = 1 << 12


@dataclass(frozen=True)
class Panel:
    """One column of a figure: `setting` simulated by SGD at the scale `simulation`, and
    integrated with `options` from each seed's initial state (with method "euler", at the SGD's
    step dt = 1/N); with a `protocol`, trained through its phases (continual learning). With
    `band`, also the linear-noise prediction of the seeds' spread about the ODE from their mean
    start (`nndyn.fluctuations`, C(0) the random students' spread, D on `band_points` Sobol'
    points; isotropic inputs, no protocol, v not trained: `band_problem`)."""

    label: str
    setting: Setting
    simulation: Simulation
    options: ODEOptions = field(default_factory=ODEOptions)
    protocol: Protocol | None = None
    band: bool = False
    band_points: int = BAND_POINTS

    def config(self) -> dict:
        """The panel as plain data (for config.json): label, setting, the simulation's and the
        solver's fields, the protocol when there is one, and the band's when there is one."""
        protocol = {} if self.protocol is None else {"teachers": asdict(self.protocol.teachers),
                                                     "phases": [asdict(phase) for phase in self.protocol.phases]}
        band = {"band": True, "band_points": self.band_points} if self.band else {}
        return {"label": self.label, "setting": asdict(self.setting), **asdict(self.simulation),
                **asdict(self.options), **protocol, **band}


@dataclass(frozen=True)
class Escapes:
    """Plateau escapes against N (`nndyn reproduce fluctuations`): `setting` learned by SGD and
    by the SDE of SGD (`nndyn.sample_paths`) from students orthogonal to the teachers and to each
    other (Q = init_scale² I, R = 0; teachers orthonormal, T = I), a plateau whose ODE never
    leaves it; `paths` seeds at each input dimension of `sizes`, up to `t_max`. A path escapes
    when its ε_g falls below half the plateau's."""

    setting: Setting
    sizes: tuple[int, ...]
    paths: int
    t_max: float
    init_scale: float = 0.5

    def panels(self) -> tuple[Panel, ...]:
        """Its SGD runs as panels (one per N; for their cost, `nndyn.app.budget`)."""
        return tuple(Panel(f"escapes at N = {N}", self.setting, Simulation(N=N, t_max=self.t_max, seeds=self.paths,
                                                                          init_scale=self.init_scale))
                     for N in self.sizes)


@dataclass(frozen=True)
class Experiment:
    """A figure: its panels and the rows to plot ("eg", "eg_seeds", "R", "Q", "v", "alignment",
    "feedback"); for the "fluctuations" layout also its `escapes`."""

    name: str
    title: str
    panels: tuple[Panel, ...]
    rows: tuple[str, ...] = ("eg", "R", "Q")
    #: "panels" (a column per panel), or "similarity" (continual panels that differ in the
    #: teachers' feature similarity: ε_g over time, forgetting and transfer against γ_f)
    layout: str = "panels"
    #: time on a log axis (power laws in t are then lines; the ε_g row reports the ODE's slope)
    log_time: bool = False
    escapes: Escapes | None = None

    def runs(self) -> tuple[Panel, ...]:
        """Every SGD run it makes, as panels: its panels, and its escapes' runs."""
        return self.panels + (() if self.escapes is None else self.escapes.panels())


@dataclass(frozen=True)
class PanelResult:
    """A panel's simulation (seed axis first), its ODEs, how well they agree, and the verdict
    (`verdict`) on whether the simulation follows the flows; for a protocol's panel, the
    trajectories carry its phases (`Trajectory.protocol`); with the panel's `band`, `spread`,
    the linear-noise prediction about the ODE from the seeds' mean start (its `ode`)."""

    panel: Panel
    sim: Trajectory
    ode: Trajectory
    comparison: Comparison = field(repr=False)
    agreement: Agreement
    spread: Fluctuations | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """Agreement metrics, all finite numbers: the largest gap in ε_g over time (of the seed
        mean, and of single seeds), relative to ε_g; the smallest alignments; the verdict's
        scores (normal deviates), threshold and answer. For a protocol, ε_g is on every teacher,
        and per task (lists over teachers) the final ε_g, forgetting and transfer of SGD (mean
        and standard error over seeds) and of the ODE (mean), the phases whose threshold was not
        reached, and the realised readout cosines."""
        protocol = self.panel.protocol
        eg = "eg" if protocol is None else "eg_teacher"
        gap = np.asarray(getattr(self.sim, eg) - getattr(self.ode, eg))
        mean_ode = np.asarray(getattr(self.ode, eg)).mean(axis=0)
        comparison = self.comparison
        summary = {
            "label": self.panel.label,
            "max_abs_eg_gap_mean": float(np.max(np.abs(gap.mean(axis=0)))),
            "max_abs_eg_gap_single_seed": float(np.max(np.abs(gap))),
            "max_relative_eg_gap_mean": float(np.max(np.abs(gap.mean(axis=0)) / np.maximum(mean_ode, 1e-12))),
            "final_eg_sim": float(np.asarray(self.sim.eg)[:, -1].mean()),
            "final_eg_ode": float(np.asarray(self.ode.eg)[:, -1].mean()),
            "min_alignment_Q": float(np.min(comparison.Q_alignment)),
            "min_alignment_R": float(np.min(comparison.R_alignment)),
            "min_alignment_v": float(np.min(comparison.v_alignment)),
        }
        if protocol is not None:
            summary.update(_protocol_summary(self.sim, self.ode, protocol))
        if self.spread is not None:  # root mean squares over the times after the first
            summary["eg_std_sgd_rms"] = float(np.sqrt(np.mean(np.var(np.asarray(self.sim.eg), axis=0, ddof=1)[1:])))
            summary["eg_std_predicted_rms"] = float(np.sqrt(np.mean(self.spread.eg_var[1:])))
        return {**summary, "verdict_scores": self.agreement.scores, "verdict_threshold": self.agreement.threshold,
                "agrees": self.agreement.passed, "verdict_answer": self.agreement.answer,
                "verdict_resolution": self.agreement.resolution}


def _protocol_summary(sim: Trajectory, ode: Trajectory, protocol: Protocol) -> dict:
    """Per task (lists over teachers): final ε_g, forgetting and transfer (`Trajectory.metrics`)
    of SGD (mean, standard error) and of the ODE (mean); the phases not reached; the readouts'
    realised cosines with the first."""
    summary = {}
    for kind, trajectory in (("sim", sim), ("ode", ode)):
        for name, values in trajectory.metrics(protocol).items():
            with warnings.catch_warnings():  # a task never trained or never left: NaN, shown as null
                warnings.simplefilter("ignore", RuntimeWarning)
                summary[f"{name}_{kind}"] = _finite(np.nanmean(values, axis=0))
                if kind == "sim":
                    summary[f"{name}_sim_se"] = _finite(np.nanstd(values, axis=0, ddof=1) / np.sqrt(len(values)))
        missed = np.argwhere(~np.asarray(trajectory.reached))
        summary[f"unreached_{kind}"] = [{"seed": int(seed), "phase": int(phase)} for seed, phase in missed]
    summary["readout_cosines"] = _finite(readout_cosines(np.asarray(sim.v_star)[0]))  # realised γ_r
    return summary


def _finite(values) -> list:
    """A list of floats with NaN as None (JSON has no NaN)."""
    return [float(value) if np.isfinite(value) else None for value in np.asarray(values)]


def run_panel(panel: Panel, report=None) -> PanelResult:
    """Simulate the panel, integrate the ODE from each seed's initial order parameters, compare:
    a PanelResult (for a protocol, trained through its phases). `report`, when given, is told
    each stage (`report.stage(name, measured)`), SGD's fraction done (`report.fraction`), and the
    end (`report.finish()`): `nndyn.app.progress.Line`."""
    report = report or Silent()
    setting, protocol, options = panel.setting, panel.protocol, asdict(panel.options)
    spread, problem = None, band_problem(setting, protocol) if panel.band else None
    if problem:  # before any work
        raise ValueError(f"{panel.label}: {problem}")
    report.stage("simulating SGD", measured=protocol is None)
    if protocol is None:
        sim = simulate(setting, progress=report.fraction, **asdict(panel.simulation))
        dt = 1 / panel.simulation.N if panel.options.method == "euler" else None
        report.stage("integrating the ODE")
        ode = integrate(setting, sim.initial_state(), sim.t, dt=dt, **options)
        report.stage("the verdict: the ODE restarted at every recorded state")
        answer = verdict(setting, sim, dt=dt, **options)
        if panel.band:
            report.stage("the linear-noise band about the ODE from the seeds' mean start")
            spread = band(panel, sim)
    else:
        scale = {key: value for key, value in asdict(panel.simulation).items() if key != "held_out"}
        sim = simulate_protocol(setting, protocol, **scale)
        options.pop("method")
        report.stage("integrating the ODE through the phases")
        ode = integrate_protocol(setting, protocol, sim.initial_state(), sim.t, **options)
        report.stage("the verdict: the ODE restarted at every recorded state")
        answer = verdict(setting, sim, protocol=protocol, **options)
    report.finish()
    return PanelResult(panel, sim, ode, compare(sim, ode), answer, spread)


def band_problem(setting: Setting, protocol: Protocol | None) -> str | None:
    """Why a panel of `setting` (and `protocol`) cannot have a band, in one line; None where it can."""
    if setting.structured or protocol is not None:
        return ("the linear-noise band is predicted for isotropic inputs without phases; remove band or the "
                + ("input spectrum" if setting.structured else "[teachers] and [[phases]] tables"))
    if setting.train_second_layer:
        return ("with a trained second layer the seeds' v are drawn at random, O(1) apart, and have no common start "
                "for one band: use nndyn.fluctuations about each seed's own ODE (docs/fluctuations.md)")
    return None


def band(panel: Panel, sim: Trajectory) -> Fluctuations:
    """The linear-noise prediction of the seeds' spread about the ODE from their mean start, C(0)
    the initial spread of random students (`initial_covariance`), at the times of `sim` (a panel
    `band_problem` lets have one)."""
    start = mean_state(sim.initial_state())
    initial = initial_covariance(start.T, panel.simulation.init_scale, panel.setting.K,
                                 panel.setting.train_second_layer)
    return fluctuations(panel.setting, start, panel.simulation.N, t=np.asarray(sim.t), points=panel.band_points,
                        initial=initial)


N_BLOG, M_BLOG = 784, 4


def figure(name: str, full: bool = False) -> Experiment:
    """The figure `name` (one of FIGURES, each in a line in DESCRIPTIONS): the blog's "fig1",
    "fig2", "fig3", or "mismatch" (models the blog's ODEs cannot express: a ReLU student on an
    erf teacher, and feedback alignment), "continual", "spectrum" or "fluctuations"; the quick
    variant (for the blog's: 3 seeds, short t, the same N = 784) unless `full`, which runs at blog
    scale (for the blog's: 10 seeds, t = 1000)."""
    seeds, t_max = (10, 1000.0) if full else (3, 300.0)

    def scale(init_scale: float) -> Simulation:
        return Simulation(N=N_BLOG, t_max=t_max, seeds=seeds, init_scale=init_scale)

    if name == "fig1":
        panels = tuple(
            Panel(f"K = {K}", Setting(K=K, M=M_BLOG, lr=0.5), scale(0.5))
            for K in (2, 4, 6)
        )
        return Experiment("fig1", "Soft committee machine, M = 4", panels)
    if name == "fig2":
        panels = tuple(
            Panel(f"K = {K}", Setting(K=K, M=M_BLOG, lr=0.5, train_second_layer=True), scale(0.5))
            for K in (2, 4, 6)
        )
        return Experiment("fig2", "Two-layer network with trained second layer, M = 4",
                          panels, rows=("eg", "R", "Q", "v", "alignment"))
    if name == "fig3":
        panels = tuple(
            Panel(f"init scale {init_scale:g}", Setting(K=4, M=M_BLOG, lr=0.5, train_second_layer=True),
                  scale(init_scale))
            for init_scale in (0.1, 0.5, 1.0, 2.0)
        )
        return Experiment("fig3", "Large initial weights: each seed and its own ODE, K = M = 4",
                          panels, rows=("eg_seeds", "R", "Q"))
    if name == "mismatch":
        mismatch = Simulation(N=N_BLOG, t_max=t_max / 3, seeds=seeds, init_scale=0.5)
        panels = (
            Panel("ReLU student, erf teacher",
                  Setting(K=4, M=2, lr=0.5, train_second_layer=True, activation="relu", teacher_activation="erf"),
                  mismatch),
            Panel("feedback alignment (erf)",
                  Setting(K=4, M=2, lr=0.5, train_second_layer=True, feedback="alignment"), mismatch),
        )
        return Experiment("mismatch", "Beyond one g and backpropagation, K = 4, M = 2", panels,
                          rows=("eg", "R", "Q", "v", "feedback"))
    if name == "continual":
        return _continual(full)
    if name == "spectrum":
        return _spectrum(full)
    if name == "fluctuations":
        return _fluctuations(full)
    raise ValueError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")


#: The feature similarities of `nndyn reproduce continual`.
SIMILARITIES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Its two set-ups: (label, heads, init_scale). Lee et al. (2021) train a head per task from
#: small initial weights; one shared head from O(1) weights is the other extreme.
CONTINUAL_SETUPS = (("separate heads, init 0.001 (Lee et al.)", "multi", 1e-3),
                    ("one shared head, init 0.5", "single", 0.5))


def _continual(full: bool) -> Experiment:
    """Lee et al. (2021): a two-layer erf student, K = 2, learns teacher 0 (M = 1), then teacher
    1 of feature similarity γ_f (readouts equal), in each of `CONTINUAL_SETUPS`; forgetting of
    task 0 and transfer to task 1 against γ_f."""
    seeds, t_phase = (10, 50.0) if full else (4, 20.0)
    setting = Setting(K=2, M=1, lr=1.0, train_second_layer=True)
    panels = tuple(
        Panel(f"{label}, γ_f = {similarity:g}", setting,
              Simulation(N=N_BLOG, t_max=2 * t_phase, seeds=seeds, init_scale=init_scale),
              protocol=Protocol(Teachers(count=2, feature_similarity=similarity, readout_similarity=1.0, heads=heads),
                                (Phase(teacher=0, t=t_phase), Phase(teacher=1, t=t_phase))))
        for label, heads, init_scale in CONTINUAL_SETUPS for similarity in SIMILARITIES)
    return Experiment("continual", "Continual learning: teacher 0, then teacher 1 (erf, K = 2, M = 1 per teacher, "
                      "η = 1)", panels, rows=("eg_teacher",), layout="similarity")


#: The power law of `nndyn reproduce spectrum`: ρ_ℓ ∝ ℓ^−(1+a).
POWER_LAW = 1.0


def _spectrum(full: bool) -> Experiment:
    """Structured inputs with a power-law spectrum, ρ_ℓ ∝ ℓ^−(1+a) in L levels of equal fraction
    (Worschech & Rosenow 2024, Fig. 1, at η = 0.5): an erf soft committee machine, K = M = 2,
    from small weights (0.01), whose plateau shortens and gives way to a power law as L grows;
    and a linear network (K = M = 1, L = 64) whose ε_g follows t^−a/(1+a) between the fastest
    and the slowest level's times (docs/structured.md)."""
    seeds, N, t_max, counts = (10, 1000, 600.0, (1, 4, 16, 64)) if full else (3, 512, 300.0, (1, 4, 16))

    def levels(count: int):
        return spectrum.power_law(POWER_LAW, count) if count > 1 else ((1.0, 1.0),)

    scale = Simulation(N=N, t_max=t_max, seeds=seeds, init_scale=0.01)
    panels = tuple(Panel(f"erf, K = M = 2, L = {count}" + (" (isotropic)" if count == 1 else ""),
                         Setting(K=2, M=2, lr=0.5, input_spectrum=levels(count)), scale) for count in counts)
    linear = Panel(f"linear K=M=1, L = 64 (L→∞: −{POWER_LAW / (1 + POWER_LAW):.2f})",
                   Setting(K=1, M=1, lr=0.5, activation="linear", input_spectrum=levels(64)), scale)
    return Experiment("spectrum", f"Power-law input spectrum ρ_ℓ ∝ ℓ^−{1 + POWER_LAW:g} in L levels, η = 0.5, "
                      "init 0.01", (*panels, linear), log_time=True)


def _fluctuations(full: bool) -> Experiment:
    """SGD at finite N beside its predictions (docs/fluctuations.md): fig1's K = 6 panel, its
    seeds' ε_g with the linear-noise ±2σ band about the ODE and the SDE's paths; and the
    escape times from a plateau the ODE never leaves (erf, K = M = 2, η = 1) against N, from SGD,
    the SDE and the saddle's ln N/(2λ_u) law. The quick variant's band takes D on 2^12 Sobol'
    points (about 1 % in D, 8× cheaper than the default 2^15)."""
    seeds, t_max, sizes, paths, points = ((16, 400.0, (100, 200, 400, 800, 1600), 48, SOBOL_POINTS) if full
                                          else (8, 300.0, (100, 200, 400, 800), 24, BAND_POINTS))
    panel = Panel("fig1's K = 6 panel", Setting(K=6, M=M_BLOG, lr=0.5),
                  Simulation(N=N_BLOG, t_max=t_max, seeds=seeds, init_scale=0.5), band=True, band_points=points)
    escapes = Escapes(Setting(K=2, M=2, lr=1.0), sizes, paths, t_max=200.0 if full else 150.0)
    return Experiment("fluctuations", "SGD at finite N beside the linear noise and the SDE of SGD", (panel,),
                      rows=("eg",), layout="fluctuations", escapes=escapes)


FIGURES = ("fig1", "fig2", "fig3", "mismatch", "continual", "spectrum", "fluctuations")
#: Each figure in one line (`nndyn reproduce --help`).
DESCRIPTIONS = {
    "fig1": "the blog's Figure 1: soft committee machines, K = 2, 4, 6 on M = 4",
    "fig2": "Figure 2: the second layer trained too, and how well SGD and the ODE align",
    "fig3": "Figure 3: large initial weights, every seed against its own ODE",
    "mismatch": "a ReLU student on an erf teacher, and feedback alignment",
    "continual": "continual learning: forgetting and transfer against the teachers' similarity",
    "spectrum": "power-law input spectra: the plateau giving way to a scaling law",
    "fluctuations": "finite N: the seeds' spread against its prediction, plateau escape times against N",
}
#: Wall time of the quick variant, a whole `nndyn reproduce NAME` process with warm caches,
#: measured on the reference 2-core machine (AMD EPYC; README).
QUICK_SECONDS = {"fig1": 28, "fig2": 30, "fig3": 28, "mismatch": 19, "continual": 18, "spectrum": 26,
                 "fluctuations": 65}
