"""Plots of experiments: simulation (blue) against ODE (red), one column per panel."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIM, ODE = "tab:blue", "tab:red"
ROW_LABELS = {
    "eg": "ε_g (log)", "eg_seeds": "ε_g per seed (log)", "R": "R (seed 0)", "Q": "Q (seed 0)",
    "v": "v (seed 0)", "alignment": "alignment sim·ODE", "feedback": "cos(v, b)",
}


def _lines(ax, t, sim, ode):
    """Every entry of one seed's order parameter (T, ...) as lines."""
    sim, ode = sim.reshape(len(t), -1), ode.reshape(len(t), -1)
    ax.plot(t, sim, color=SIM, lw=1.0, alpha=0.8)
    ax.plot(t, ode, color=ODE, lw=1.0, ls="--")


def _row(ax, row, result):
    t = np.asarray(result.sim.t)
    sim, ode = result.sim, result.ode
    if row == "eg":
        eg = np.asarray(sim.eg)
        ax.fill_between(t, eg.min(axis=0), eg.max(axis=0), color=SIM, alpha=0.25, lw=0)
        ax.plot(t, eg.mean(axis=0), color=SIM, label="simulation (mean, range)")
        ax.plot(t, np.asarray(ode.eg).mean(axis=0), color=ODE, ls="--", label="ODE")
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


def plot_experiment(experiment, results, path) -> None:
    """Draw `results` (one PanelResult per panel) in a grid of rows × panels, saved to `path`."""
    rows, columns = experiment.rows, len(results)
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.6 * columns, 2.4 * len(rows)),
                             sharex=True, squeeze=False)
    for column, result in enumerate(results):
        axes[0, column].set_title(result.panel.label)
        for r, row in enumerate(rows):
            _row(axes[r, column], row, result)
            if column == 0:
                axes[r, column].set_ylabel(ROW_LABELS[row])
        axes[-1, column].set_xlabel("t = steps / N")
    for r, row in enumerate(rows):
        if row in ("eg", "eg_seeds", "alignment", "feedback"):
            axes[r, -1].legend(fontsize=7, loc="best")
    dimensions = ", ".join(sorted({f"{result.panel.simulation.N}" for result in results}, key=int))
    fig.suptitle(f"{experiment.title}, N = {dimensions}: SGD simulation (solid) vs ODE (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
