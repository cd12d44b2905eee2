"""Every figure the project writes reads without the docs: one legend for the figure, a title
with the experiment and N, each panel's setting in its title, every row's quantity on its y-axis,
time on every bottom axis, R and Q entries in colours of their own, and no text outside the
canvas. The figures are drawn from synthetic trajectories of each experiment's shapes (the
drawing, not the dynamics, is under test)."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from nndyn.app.config import read_config
from nndyn.app.experiments import FIGURES, PanelResult
from nndyn.app.experiments import figure as experiment_of
from nndyn.app.plots import figure
from nndyn.core.compare import Agreement, compare
from nndyn.core.trajectory import Trajectory

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("run", "alignment", "continual", "structured")


def synthetic(panel, rng, seeds=3, n=25, offset=0.0) -> Trajectory:
    """A trajectory of `panel`'s shapes with smooth, positive, seed-dependent values."""
    setting, protocol = panel.setting, panel.protocol
    K, count = setting.K, 1 if protocol is None else protocol.teachers.count
    units = count * setting.M
    t = np.linspace(0, 10, n)
    decay = np.exp(-t / 5)[None, :] * (1 + 0.1 * rng.random((seeds, 1))) + offset

    def drift(*shape):
        return decay.reshape(seeds, n, *([1] * len(shape))) * rng.normal(size=(seeds, 1, *shape))

    Q = drift(K, K)
    fields = dict(t=t, eg=0.1 * decay, Q=(Q + np.swapaxes(Q, -1, -2)) / 2, R=drift(K, units), v=1 + drift(K),
                  T=np.broadcast_to(np.eye(units), (seeds, units, units)),
                  b=rng.normal(size=(seeds, K)) if setting.feedback == "alignment" else None)
    if protocol is None:
        return Trajectory(**fields, v_star=np.ones((seeds, units)))
    phases = len(protocol.phases)
    phase = np.minimum(np.arange(n) * phases // n, phases - 1)
    starts = np.append(np.linspace(0, 10, phases + 1)[:-1], 10.0)
    return Trajectory(**fields, v_star=np.ones((seeds, count, setting.M)),
                      eg_teacher=0.1 * decay[..., None] * np.ones(count),
                      heads=1 + drift(protocol.teachers.head_count, K),
                      phase=np.broadcast_to(phase, (seeds, n)), starts=np.broadcast_to(starts, (seeds, phases + 1)),
                      reached=np.ones((seeds, phases), bool))


def synthetic_band(panel, sim):
    """A linear-noise band (`Fluctuations`) about the seeds' mean of `sim`."""
    from nndyn.core.diffusion import coordinate_names
    from nndyn.core.fluctuations import Fluctuations

    setting = panel.setting
    names = coordinate_names(setting.K, setting.M, setting.train_second_layer)
    t = np.asarray(sim.t)
    mean = Trajectory(t=t, eg=np.asarray(sim.eg).mean(axis=0), Q=np.asarray(sim.Q)[0], R=np.asarray(sim.R)[0],
                      v=np.asarray(sim.v)[0], T=np.asarray(sim.T)[0], v_star=np.asarray(sim.v_star)[0])
    return Fluctuations(t, panel.simulation.N, setting.K, setting.M, setting.train_second_layer,
                        np.zeros((len(t), len(names), len(names))), (0.01 * mean.eg) ** 2, names, mean)


def synthetic_finite(experiment, results, rng):
    """For the "fluctuations" layout, a `FiniteResult` of the panel's shapes: SDE paths and escape
    times (some paths never escaping), else None."""
    if experiment.layout != "fluctuations":
        return None
    from nndyn.app.finite import EscapeResult, FiniteResult
    from nndyn.core.fixed_points import FixedPoint

    (result,) = results
    escapes = experiment.escapes
    times = 50 + 10 * rng.random((2, len(escapes.sizes), escapes.paths))
    times[:, 0, 0] = np.inf
    times[1, 1, :] = np.inf  # the SDE's median at the second N beyond t_max
    plateau = FixedPoint(None, 0.02, 0.0, 0, np.array([0.06, -0.1]), np.eye(2), 1e-9)
    return FiniteResult(synthetic(result.panel, rng), EscapeResult(escapes, *times, plateau, 0.01, False))


#: Figures of several panels that take over 2 s to draw and check: in the slow set, so that the fast
#: subset (-m 'not slow') stays within a minute; the others keep the check there.
SLOW_FIGURES = {"fig1", "fig2", "fig3", "spectrum"}


def experiments():
    """Every figure `nndyn reproduce` draws, and those of the example run configs."""
    for name in FIGURES:
        marks = [pytest.mark.slow] if name in SLOW_FIGURES else []
        yield pytest.param(lambda name=name: experiment_of(name), id=name, marks=marks)
    for name in EXAMPLES:
        yield pytest.param(lambda name=name: read_config(REPO / "examples" / f"{name}.toml"), id=f"{name}.toml")


@pytest.mark.parametrize("make", list(experiments()))
def test_every_figure_reads_without_the_docs(make):
    experiment = make()
    rng = np.random.default_rng(0)
    results = []
    for panel in experiment.panels:
        sim, ode = synthetic(panel, rng), synthetic(panel, rng, offset=0.01)
        spread = synthetic_band(panel, sim) if panel.protocol is None else None  # as if every panel had one
        results.append(PanelResult(panel, sim, ode, compare(sim, ode), Agreement({"Q": 1.0}, 3.0, 10, 0.1), spread))
    fig = figure(experiment, results, synthetic_finite(experiment, results, rng))
    fig.set_dpi(110)  # as written (plot_experiment)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), "one legend per figure"
    title = fig.get_suptitle()
    assert experiment.name in title and "N = " in title and "seeds" in title
    bounds = fig.bbox
    renderer = canvas.get_renderer()
    # what is drawn: each axes with its tick labels, axis labels and title, the legend, the title
    for artist in (*fig.axes, *fig.legends, fig._suptitle):
        box = artist.get_tightbbox(renderer)
        assert (box.x0 >= bounds.x0 - 1 and box.x1 <= bounds.x1 + 1 and box.y0 >= bounds.y0 - 1
                and box.y1 <= bounds.y1 + 1), f"{artist} reaches outside the canvas: {box} in {bounds}"
    texts = [text for ax in fig.axes for text in ax.texts]  # the annotations inside panels
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x1 <= text.axes.bbox.x1 + 1 and box.x0 >= text.axes.bbox.x0 - 1, text.get_text()
    if experiment.layout in ("similarity", "fluctuations"):
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        if experiment.layout == "fluctuations":  # each panel's setting in its title
            assert all("η = " in ax.get_title() and "teacher" in ax.get_title() for ax in fig.axes)
        return
    grid = np.array(fig.axes).reshape(len(experiment.rows), len(results))
    for column, result in enumerate(results):
        top = grid[0, column].get_title()
        assert "η = " in top and "teacher" in top and f"K = {result.panel.setting.K}" in top, top
        assert grid[-1, column].get_xlabel().startswith("t = steps / N")
        labels = [label for label in grid[-1, column].get_xticklabels() if label.get_text()]
        assert labels, "time ticks on every bottom axis"
        for row, ax in zip(experiment.rows, grid[:, column]):
            assert ax.get_ylabel(), f"row {row} has no y-label"
            if row == "eg" and result.spread is not None:  # the linear-noise band, and its legend entry
                assert any(collection.get_hatch() == "////" for collection in ax.collections)
                assert any("linear noise" in text.get_text() for text in fig.legends[0].get_texts())
            if row in ("R", "Q"):  # every entry its colour, the same for SGD and the ODE
                colours = [tuple(line.get_color()) for line in ax.get_lines()]
                entries = len(colours) // 2
                assert len(set(colours)) == min(entries, 20) and colours[0::2] == colours[1::2]
            if ax.get_yscale() == "log":
                ticks = [label.get_text() for label in ax.get_yticklabels() if label.get_text()]
                assert all("10^" in tick or "10^{" in tick or "$" in tick for tick in ticks), ticks


def test_a_setting_is_described_with_what_differs_from_the_defaults():
    from nndyn import Setting
    from nndyn.app.plots import describe

    plain = describe(Setting(K=2, M=3, lr=0.5))
    assert plain == "erf student on erf teacher, K = 2, M = 3, η = 0.5, σ = 0, B = 1"
    other = describe(Setting(K=4, M=2, lr=0.5, lr_v=0.1, train_second_layer=True, activation="relu",
                             teacher_activation="erf", feedback="alignment", output_scaling="1/K", sigma=0.1))
    for part in ("relu student on erf teacher", "v trained (η_v = 0.1)", "feedback alignment", "κ = 1/K", "σ = 0.1"):
        assert part in other


def test_a_scan_of_one_rate_is_a_curve_and_unescaped_plateaus_are_lower_bounds():
    """η_v following η is one axis, not an η × η_v grid; a seed that never left its plateau makes
    that point a lower bound (an open marker, said in the legend); every text on the canvas."""
    from nndyn.sweeps.phase import phase_diagrams

    rows = [{"lr": lr, "lr_v": lr, "K": 2, "seed": seed, "final_eg": 0.01 * lr, "plateau_length": 50 / lr,
             "plateau_start": 1.0, "escaped": not (lr == 0.1 and seed == 0)}
            for lr in (0.1, 0.5, 1.0) for seed in (0, 1)]
    figures = phase_diagrams(rows, ("K", "lr", "lr_v", "seed"))
    assert set(figures) == {"final_eg", "plateau_length"}
    for name, fig in figures.items():
        (ax,) = fig.axes
        assert ax.get_xlabel() == "lr" and ax.get_ylabel() and not ax.collections, "a curve, not a map"
        legend = ax.get_legend()
        if name == "plateau_length":
            assert legend is not None and "lower bound" in legend.get_texts()[0].get_text()
            open_markers = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
            assert len(open_markers) == 1 and list(open_markers[0].get_xdata()) == [0.1]
        else:
            assert legend is None
    two = [{**row, "K": K} for row in rows for K in (2, 3)]
    fig = phase_diagrams(two, ("K", "lr", "lr_v", "seed"))["plateau_length"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "K" and ax.get_ylabel() == "lr"
    assert sum(patch.get_hatch() == "///" for patch in ax.patches) == 2  # lr = 0.1 at K = 2 and 3
