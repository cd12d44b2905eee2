"""Plots of experiments: simulation (blue) against ODE (red), one column per panel."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

SIM, ODE = "tab:blue", "tab:red"
ROW_LABELS = {
    "eg": "ε_g (log)", "eg_seeds": "ε_g per seed (log)", "R": "R (seed 0)", "Q": "Q (seed 0)",
    "v": "v (seed 0)", "alignment": "alignment sim·ODE", "feedback": "cos(v, b)",
    "eg_teacher": "ε_g per teacher (log)",
}


def _lines(ax, t, sim, ode):
    """Every entry of one seed's order parameter (T, ...) as lines."""
    sim, ode = sim.reshape(len(t), -1), ode.reshape(len(t), -1)
    ax.plot(t, sim, color=SIM, lw=1.0, alpha=0.8)
    ax.plot(t, ode, color=ODE, lw=1.0, ls="--")


def power_law_window(setting, t) -> tuple[float, float]:
    """Where to fit ε_g's power law: for structured inputs, between ten times the fastest level's
    time 1/(2ηρ_max) and a tenth of the slowest's 1/(2ηρ_min) (docs/structured.md), when that
    holds a factor 3 of the recorded times; else the last decade of t."""
    if setting.input_spectrum is not None:
        rho = np.array([eigenvalue for eigenvalue, _ in setting.input_spectrum])
        low, high = max(10 / (2 * setting.lr * rho.max()), t[1]), min(1 / (20 * setting.lr * rho.min()), t[-1])
        if high >= 3 * low:
            return low, high
    return t[-1] / 10, t[-1]


def fitted_slope(t, eg, window) -> float:
    """The slope of log ε_g against log t over the times in `window` (a power law's exponent)."""
    inside = (t >= window[0]) & (t <= window[1]) & (eg > 0)
    return float(np.polyfit(np.log(t[inside]), np.log(eg[inside]), 1)[0])


def _row(ax, row, result, log_time=False):
    t = np.asarray(result.sim.t)
    sim, ode = result.sim, result.ode
    if row == "eg":
        eg = np.asarray(sim.eg)
        ax.fill_between(t, eg.min(axis=0), eg.max(axis=0), color=SIM, alpha=0.25, lw=0)
        mean_ode = np.asarray(ode.eg).mean(axis=0)
        window = power_law_window(result.panel.setting, t)
        slopes = [f", slope {fitted_slope(t, mean, window):.2f}" if log_time else "" for mean in (eg.mean(0), mean_ode)]
        ax.plot(t, eg.mean(axis=0), color=SIM, label="simulation (mean, range)" + slopes[0])
        ax.plot(t, mean_ode, color=ODE, ls="--", label="ODE" + slopes[1])
        if log_time:
            ax.axvspan(*window, color="0.9", zorder=0,
                       label=f"slopes fitted over t ∈ [{window[0]:.3g}, {window[1]:.3g}]")
        ax.set_yscale("log")
    elif row == "eg_seeds":
        for seed, (s, o) in enumerate(zip(np.asarray(sim.eg), np.asarray(ode.eg))):
            ax.plot(t, s, color=f"C{seed}", lw=1.0, label=f"seed {seed} SGD" if seed < 3 else None)
            ax.plot(t, o, color=f"C{seed}", lw=1.0, ls="--", label=f"seed {seed} ODE" if seed < 3 else None)
        ax.set_yscale("log")
    elif row in ("R", "Q", "v"):
        _lines(ax, t, np.asarray(getattr(sim, row))[0], np.asarray(getattr(ode, row))[0])
    elif row == "alignment":
        for name, style in (("R", "-"), ("Q", "--"), ("v", ":")):
            ax.plot(t, np.asarray(getattr(result.comparison, f"{name}_alignment")).mean(axis=0),
                    color="k", ls=style, label=name)
        ax.set_ylim(min(0.9, ax.get_ylim()[0]), 1.005)
    elif row == "eg_teacher":
        for teacher in range(sim.eg_teacher.shape[-1]):
            ax.plot(t, np.asarray(sim.eg_teacher)[..., teacher].mean(axis=0), color=f"C{teacher}",
                    label=f"teacher {teacher} SGD (mean)")
            ax.plot(t, np.asarray(ode.eg_teacher)[..., teacher].mean(axis=0), color=f"C{teacher}", ls="--",
                    label=f"teacher {teacher} ODE (mean)")
        for start in np.asarray(ode.starts).mean(axis=0)[1:-1]:
            ax.axvline(start, color="0.6", lw=0.8)
        ax.set_yscale("log")
    elif row == "feedback":
        if sim.b is None:
            ax.set_axis_off()
            return
        for trajectory, color, style, label in ((sim, SIM, "-", "simulation (mean)"), (ode, ODE, "--", "ODE (mean)")):
            v, b = np.asarray(trajectory.v), np.asarray(trajectory.b)[:, None, :]
            cosine = np.sum(v * b, axis=-1) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(b, axis=-1))
            ax.plot(t, cosine.mean(axis=0), color=color, ls=style, label=label)
    else:
        raise ValueError(f"unknown row {row!r}")


def plot_similarity(experiment, results, path) -> None:
    """Continual panels that differ in the feature similarity γ_f, in one or more set-ups (the
    label before ", γ_f"): ε_g on both teachers over time in the first set-up (one colour per
    γ_f, ODE), and forgetting of task 0 and transfer to task 1 against γ_f for every set-up (ODE
    line, SGD mean ± standard error over seeds, the verdict's answer in the legend)."""
    fig = Figure(figsize=(14, 4.2))
    axes = fig.subplots(1, 3)
    setups: dict[str, list] = {}
    for result in results:
        setups.setdefault(result.panel.label.rsplit(", γ_f", 1)[0], []).append(result)
    first, first_results = next(iter(setups.items()))
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(first_results)))
    for colour, result in zip(colours, first_results):
        similarity = result.panel.protocol.teachers.feature_similarity
        t = np.asarray(result.sim.t)
        for teacher, style in ((0, "-"), (1, ":")):
            axes[0].plot(t, np.asarray(result.ode.eg_teacher)[..., teacher].mean(axis=0), color=colour, ls=style,
                         label=f"γ_f = {similarity:g}" if teacher == 0 else None)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("t = steps / N")
    axes[0].set_ylabel("ε_g, ODE (task 0 solid, task 1 dotted)")
    axes[0].set_title(first, fontsize=9)
    axes[0].legend(fontsize=7)
    for index, (setup, members) in enumerate(setups.items()):
        similarities = [result.panel.protocol.teachers.feature_similarity for result in members]
        metrics = {kind: [getattr(result, kind).metrics(result.panel.protocol) for result in members]
                   for kind in ("sim", "ode")}
        agree = sum(result.agreement.answer == "yes" for result in members)
        for ax, (name, task) in zip(axes[1:], (("forgetting", 0), ("transfer", 1))):
            ode = [np.nanmean(values[name][..., task]) for values in metrics["ode"]]
            sim = [values[name][..., task] for values in metrics["sim"]]
            ax.plot(similarities, ode, color=f"C{index}", label=f"{setup}: ODE")
            ax.errorbar(similarities, [np.nanmean(s) for s in sim],
                        yerr=[np.nanstd(s, ddof=1) / np.sqrt(len(s)) for s in sim], fmt="o", color=f"C{index}",
                        label=f"SGD (mean ± SE; verdict: follows the ODE at {agree} of {len(members)})")
    for ax, label in zip(axes[1:], ("forgetting of task 0", "forward transfer to task 1")):
        ax.set_xlabel("feature similarity γ_f")
        ax.set_ylabel(label)
        ax.legend(fontsize=6.5)
    N, seeds = results[0].panel.simulation.N, results[0].panel.simulation.seeds
    fig.suptitle(f"{experiment.title}, N = {N}, {seeds} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_experiment(experiment, results, path) -> None:
    """Draw `results` (one PanelResult per panel) in a grid of rows × panels, saved to `path`."""
    if experiment.layout == "similarity":
        plot_similarity(experiment, results, path)
        return
    rows, columns = experiment.rows, len(results)
    fig = Figure(figsize=(3.6 * columns, 2.4 * len(rows)))
    axes = fig.subplots(len(rows), columns, sharex=True, squeeze=False)
    for column, result in enumerate(results):
        axes[0, column].set_title(result.panel.label)
        for r, row in enumerate(rows):
            _row(axes[r, column], row, result, experiment.log_time)
            if column == 0:
                axes[r, column].set_ylabel(ROW_LABELS[row])
        if experiment.log_time:
            axes[-1, column].set_xscale("log")  # shared by the column's rows
        axes[-1, column].set_xlabel("t = steps / N" + (" (log)" if experiment.log_time else ""))
    for r, row in enumerate(rows):
        if row == "eg" and experiment.log_time:  # each panel's fitted slopes
            for ax in axes[r]:
                ax.legend(fontsize=6.5, loc="lower left")
        elif row in ("eg", "eg_seeds", "alignment", "feedback", "eg_teacher"):
            axes[r, -1].legend(fontsize=7, loc="best")
    dimensions = ", ".join(sorted({f"{result.panel.simulation.N}" for result in results}, key=int))
    fig.suptitle(f"{experiment.title}, N = {dimensions}: SGD simulation (solid) vs ODE (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
